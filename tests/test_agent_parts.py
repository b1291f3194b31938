from alma.agent.actor import History, render_memory
from alma.agent.matching import match_action


def test_match_exact_normalised_closest_and_invalid() -> None:
    admissible = ["go north", "take blue key", "open red door"]
    assert match_action("go north", admissible) == ("go north", True)
    assert match_action("  Take the Blue-Key! ", admissible)[1] is True
    assert match_action("Take blue key.", admissible) == ("take blue key", True)
    assert match_action("open the red door", admissible) == ("open red door", True)
    assert match_action("dance wildly", admissible) == ("dance wildly", False)
    assert match_action(" anything ", None) == ("anything", True)


def test_render_memory_caps_and_flags() -> None:
    assert render_memory({}, 100) == ("", False)
    text, truncated = render_memory({"tips": "use keys", "cases": [1, 2]}, 1000)
    assert "[tips]\nuse keys" in text and not truncated
    text, truncated = render_memory({"big": "x" * 5000}, 200)
    assert truncated and len(text) <= 200 and text.endswith("(memory truncated)")


def test_history_stays_within_budget_and_keeps_the_task() -> None:
    history = History(budget=400, first="Task: find the coin\nobservation zero")
    for index in range(60):
        history.add(f'{{"action": "go {index}"}}', f"go {index}", f"observation {index} " * 8)
        assert history.tokens() <= 400
    messages = history.messages("system")
    assert messages[1].content.startswith("Task: find the coin")
    assert "earlier steps are omitted" in messages[1].content
    omitted = len(history.omitted)
    assert f"({omitted} earlier steps" in messages[1].content
    assert f"go {omitted - 1})" in messages[1].content and "..., go" in messages[1].content
    roles = [m.role for m in messages[1:]]
    assert roles == ["user"] + ["assistant", "user"] * (len(roles) // 2)


def test_history_trims_in_chunks() -> None:
    history = History(budget=1000, first="Task")
    trims = 0
    previous = 0
    for index in range(200):
        history.add("answer", f"a{index}", "observation " * 10)
        if len(history.omitted) != previous:
            trims += 1
            previous = len(history.omitted)
    assert trims < 200 / 5  # the prefix changes rarely, not every step
