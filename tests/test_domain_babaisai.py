"""The babaisai domain: rules engine (cases worked out by hand), generators, solver, contract."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import alma.domains.babaisai.catalogue as catalogue_module
from alma.domains.babaisai import FAMILIES, HELD_OUT, IN_DISTRIBUTION, BabaIsAIDomain, BabaIsAIEnv
from alma.domains.babaisai.catalogue import STEP_LIMIT, find_level, shipped
from alma.domains.babaisai.engine import (
    ACTIONS,
    Board,
    Piece,
    State,
    advance,
    decode,
    encode,
    obj,
    rule_tiles,
    rules_of,
    status_of,
    tile,
)
from alma.domains.babaisai.families import DIVIDER, generate, parse_family
from alma.domains.babaisai.observation import describe, offset_text
from alma.domains.babaisai.solver import shortest_plan
from alma.domains.base import Domain, TextEnv
from alma.domains.checker import check_domain
from alma.domains.registry import get_domain
from alma.errors import ConfigError, UnknownDomainError, UsageError
from alma.types import SPLITS, Split, Task

BOARD = Board(6, 6)
YOU_RULE = rule_tiles("baba", "you", 0, 5)  # along the bottom row, out of the way


def state(*groups: Piece | Iterable[Piece]) -> State:
    pieces: list[Piece] = []
    for group in groups:
        pieces.extend([group] if isinstance(group, Piece) else group)
    return encode(BOARD, pieces)


def play(start: State, moves: str, board: Board = BOARD) -> tuple[State, str]:
    """Apply moves given as letters (U R D L, I for idle)."""
    names = {"U": "up", "R": "right", "D": "down", "L": "left", "I": "idle"}
    current, status = start, "playing"
    for letter in moves:
        current, status = advance(board, current, names[letter])
    return current, status


def where(
    s: State, name: str, *, text: bool = False, board: Board = BOARD
) -> list[tuple[int, int]]:
    return [(p.x, p.y) for p in decode(board, s) if p.name == name and p.text == text]


def lines(s: State, board: Board = BOARD) -> tuple[str, ...]:
    return rules_of(board, s).lines


# --------------------------------------------------------------------------- rule parsing


def test_a_horizontal_line_is_a_rule() -> None:
    assert lines(state(rule_tiles("baba", "you", 1, 2))) == ("baba is you",)


def test_a_vertical_line_is_a_rule() -> None:
    assert lines(state(rule_tiles("key", "win", 4, 1, vertical=True))) == ("key is win",)


def test_several_rules_in_reading_order_and_a_shared_is() -> None:
    s = state(rule_tiles("wall", "stop", 0, 0), rule_tiles("baba", "you", 0, 4))
    assert lines(s) == ("wall is stop", "baba is you")
    # one `is` read both ways: BALL IS WIN across and KEY IS PUSH down
    cross = state(
        tile("ball", 1, 2),
        tile("is", 2, 2),
        tile("win", 3, 2),
        tile("key", 2, 1),
        tile("push", 2, 3),
    )
    assert lines(cross) == ("ball is win", "key is push")


@pytest.mark.parametrize(
    "pieces",
    [
        [tile("baba", 0, 0), tile("is", 1, 0), tile("you", 3, 0)],  # a gap
        [tile("you", 0, 0), tile("is", 1, 0), tile("baba", 2, 0)],  # backwards
        [tile("baba", 0, 0), tile("is", 1, 1), tile("you", 2, 2)],  # diagonal
        [tile("win", 0, 0), tile("is", 1, 0), tile("you", 2, 0)],  # no noun first
        [tile("baba", 0, 0), tile("you", 1, 0), tile("is", 2, 0)],  # no `is` in the middle
        [tile("baba", 0, 0), tile("is", 1, 0), tile("is", 2, 0)],  # `is` is no complement
        [tile("baba", 0, 0), tile("is", 1, 1), tile("you", 0, 2)],  # a bent column
    ],
)
def test_broken_lines_are_no_rules(pieces: list[Piece]) -> None:
    assert lines(state(pieces)) == ()


def test_noun_is_noun_transforms_and_noun_is_itself_protects() -> None:
    balls = [obj("ball", 2, 2, "red"), obj("ball", 4, 3, "green")]
    turned, status = advance(
        BOARD, state(YOU_RULE, obj("baba", 0, 0), balls, rule_tiles("ball", "key", 0, 1)), "idle"
    )
    assert status == "playing"
    assert where(turned, "ball") == []
    assert where(turned, "key") == [(2, 2), (4, 3)]
    kept, _ = advance(
        BOARD,
        state(
            YOU_RULE,
            obj("baba", 0, 0),
            balls,
            rule_tiles("ball", "key", 0, 1),
            rule_tiles("ball", "ball", 3, 0),
        ),
        "idle",
    )
    assert where(kept, "ball") == [(2, 2), (4, 3)]


def test_a_rule_made_by_a_push_holds_from_that_step() -> None:
    # BALL _ WIN along the top with IS just below the gap; baba pushes IS up into the gap
    broken = [tile("ball", 0, 0), tile("win", 2, 0), tile("is", 1, 1), obj("baba", 1, 2)]
    s = state(YOU_RULE, broken, obj("ball", 4, 2))
    assert lines(s) == ("baba is you",)
    after, status = advance(BOARD, s, "up")
    assert lines(after) == ("ball is win", "baba is you")
    assert status == "playing"
    assert play(after, "DRR")[1] == "playing"
    assert play(after, "DRRR")[1] == "won"
    # with a ball lying under the IS tile, baba steps onto it as the rule forms: won at once
    under = state(YOU_RULE, broken, obj("ball", 1, 1))
    assert advance(BOARD, under, "up")[1] == "won"


# --------------------------------------------------------------------------- moving and pushing


def test_walking_and_the_edge() -> None:
    s = state(YOU_RULE, obj("baba", 0, 0))
    assert where(advance(BOARD, s, "right")[0], "baba") == [(1, 0)]
    assert advance(BOARD, s, "up")[0] == s  # the edge
    assert advance(BOARD, s, "left")[0] == s
    assert advance(BOARD, s, "idle") == (s, "playing")


def test_stop_blocks_and_without_the_rule_walls_are_walked_over() -> None:
    walls = [obj("wall", 2, y) for y in range(5)]
    blocked = state(YOU_RULE, rule_tiles("wall", "stop", 3, 0), walls, obj("baba", 1, 2))
    assert advance(BOARD, blocked, "right")[0] == blocked
    free = state(YOU_RULE, walls, obj("baba", 1, 2))
    assert where(play(free, "RR")[0], "baba") == [(3, 2)]


def test_pushing_a_chain_of_tiles() -> None:
    s = state(YOU_RULE, obj("baba", 0, 2), tile("key", 1, 2), tile("win", 2, 2))
    after, _ = advance(BOARD, s, "right")
    assert where(after, "baba") == [(1, 2)]
    assert where(after, "key", text=True) == [(2, 2)]
    assert where(after, "win", text=True) == [(3, 2)]


def test_a_chain_against_the_edge_does_not_move() -> None:
    s = state(YOU_RULE, obj("baba", 2, 2), tile("key", 3, 2), tile("is", 4, 2), tile("win", 5, 2))
    assert advance(BOARD, s, "right")[0] == s


def test_a_chain_against_a_stop_object_does_not_move_but_a_plain_object_is_no_obstacle() -> None:
    chain = [obj("baba", 0, 2), tile("key", 1, 2), tile("ball", 2, 2)]
    stopped = state(YOU_RULE, rule_tiles("wall", "stop", 0, 0), chain, obj("wall", 3, 2))
    assert advance(BOARD, stopped, "right")[0] == stopped
    over = state(YOU_RULE, chain, obj("wall", 3, 2))  # no `wall is stop`: tiles slide onto it
    after, _ = advance(BOARD, over, "right")
    assert where(after, "ball", text=True) == [(3, 2)]
    assert where(after, "wall") == [(3, 2)]


def test_push_objects_and_push_beats_stop() -> None:
    s = state(
        YOU_RULE,
        rule_tiles("ball", "push", 0, 0),
        rule_tiles("ball", "stop", 0, 1),
        obj("baba", 0, 3),
        obj("ball", 1, 3),
        obj("ball", 2, 3),
    )
    after, _ = advance(BOARD, s, "right")
    assert where(after, "ball") == [(2, 3), (3, 3)]
    assert where(after, "baba") == [(1, 3)]


def test_pull_follows_the_mover() -> None:
    s = state(YOU_RULE, rule_tiles("key", "pull", 0, 0), obj("key", 1, 2), obj("baba", 2, 2))
    after, _ = advance(BOARD, s, "right")
    assert where(after, "baba") == [(3, 2)]
    assert where(after, "key") == [(2, 2)]
    # moving sideways leaves it: it is not behind
    side, _ = advance(BOARD, s, "down")
    assert where(side, "key") == [(1, 2)]


def test_defeat_destroys_you_and_the_level_is_lost() -> None:
    s = state(YOU_RULE, rule_tiles("ball", "defeat", 0, 0), obj("baba", 1, 2), obj("ball", 2, 2))
    after, status = advance(BOARD, s, "right")
    assert status == "lost"
    assert where(after, "baba") == []
    assert where(after, "ball") == [(2, 2)]


def test_open_and_shut_destroy_each_other() -> None:
    rules = [
        rule_tiles("key", "open", 0, 0),
        rule_tiles("key", "push", 3, 0),
        rule_tiles("door", "shut", 0, 1),
        rule_tiles("door", "stop", 3, 1),
    ]
    s = state(YOU_RULE, *rules, obj("baba", 0, 3), obj("key", 1, 3), obj("door", 2, 3))
    after, status = advance(BOARD, s, "right")
    assert status == "playing"
    assert where(after, "baba") == [(1, 3)]
    assert where(after, "key") == where(after, "door") == []
    # without `key is open` the shut door is only a stop: nothing moves
    closed = state(YOU_RULE, *rules[1:], obj("baba", 0, 3), obj("key", 1, 3), obj("door", 2, 3))
    assert advance(BOARD, closed, "right")[0] == closed


def test_an_open_you_walking_into_a_shut_door_is_destroyed_with_it() -> None:
    s = state(
        YOU_RULE,
        rule_tiles("baba", "open", 0, 0),
        rule_tiles("door", "shut", 0, 1),
        rule_tiles("door", "stop", 3, 1),
        obj("baba", 1, 3),
        obj("door", 2, 3),
    )
    after, status = advance(BOARD, s, "right")
    assert status == "lost"
    assert where(after, "door") == []


def test_win_when_you_reaches_win() -> None:
    s = state(YOU_RULE, rule_tiles("ball", "win", 0, 0), obj("baba", 1, 2), obj("ball", 3, 2))
    assert advance(BOARD, s, "right")[1] == "playing"
    assert play(s, "RR")[1] == "won"


def test_you_that_is_also_win_wins_when_the_rule_forms() -> None:
    column = state(
        YOU_RULE, tile("baba", 4, 0), tile("is", 4, 1), tile("win", 3, 2), obj("baba", 2, 2)
    )
    after, status = advance(BOARD, column, "right")  # WIN pushed under IS: BABA IS WIN
    assert lines(after) == ("baba is win", "baba is you")
    assert status == "won"


def test_breaking_baba_is_you_loses() -> None:
    s = state(rule_tiles("baba", "you", 0, 1), obj("baba", 2, 2))
    after, status = advance(BOARD, s, "up")  # YOU is pushed out of the line
    assert where(after, "you", text=True) == [(2, 0)]
    assert status == "lost"
    assert status_of(BOARD, encode(BOARD, [obj("baba", 1, 1)])) == "lost"  # no rule at all


def test_making_another_object_you_hands_over_control() -> None:
    # a KEY tile above the BABA tile of BABA IS YOU: pushing it down shoves BABA out of line
    s = state(
        rule_tiles("baba", "you", 1, 3),  # (1,3) (2,3) (3,3)
        tile("key", 1, 2),
        obj("baba", 1, 1),
        obj("key", 4, 0),
    )
    after, status = advance(BOARD, s, "down")  # KEY replaces BABA in the line
    assert lines(after) == ("key is you",)
    assert status == "playing"
    moved, _ = advance(BOARD, after, "left")
    assert where(moved, "key") == [(3, 0)]  # the key moves now
    assert where(moved, "baba") == [(1, 2)]  # baba stays where it was


def test_every_you_object_moves() -> None:
    s = state(YOU_RULE, obj("baba", 0, 1), obj("baba", 1, 1), obj("baba", 5, 1))
    after, _ = advance(BOARD, s, "right")
    assert where(after, "baba") == [(1, 1), (2, 1), (5, 1)]  # the last one is at the edge


def test_unknown_actions_are_refused_by_the_engine() -> None:
    with pytest.raises(ValueError, match="unknown action"):
        advance(BOARD, state(YOU_RULE, obj("baba", 0, 0)), "jump")


def test_encode_and_decode_round_trip_and_reject_pieces_off_the_board() -> None:
    pieces = [obj("baba", 1, 1), tile("win", 5, 5), obj("ball", 1, 1, "red")]
    assert sorted(decode(BOARD, encode(BOARD, pieces))) == sorted(pieces)
    with pytest.raises(ValueError, match="outside"):
        encode(BOARD, [obj("baba", 6, 0)])


# --------------------------------------------------------------------------- observation


def test_observation_lists_rules_then_pieces_relative_to_you() -> None:
    board = Board(5, 5)
    pieces = [*rule_tiles("key", "win", 2, 0), *rule_tiles("baba", "you", 0, 4)]
    s = encode(board, [*pieces, obj("baba", 1, 3), obj("key", 4, 3, "red")])
    assert describe(board, s).splitlines() == [
        "Active rules:",
        "key is win",
        "baba is you",
        "",
        "Objects on the map (positions relative to you, the white baba):",
        "rule `key` 1 step to the right and 3 steps up",
        "rule `is` 2 steps to the right and 3 steps up",
        "rule `win` 3 steps to the right and 3 steps up",
        "red key 3 steps to the right",
        "rule `baba` 1 step to the left and 1 step down",
        "rule `is` 1 step down",
        "rule `you` 1 step to the right and 1 step down",
        "",
        "Free cells before the edge of the map: 1 to the left, 3 to the right, 3 up, 1 down.",
    ]


def test_offsets_in_words() -> None:
    assert offset_text(2, -1) == "2 steps to the right and 1 step up"
    assert offset_text(-1, 0) == "1 step to the left"
    assert offset_text(0, 3) == "3 steps down"
    assert offset_text(0, 0) == "on your cell"


# --------------------------------------------------------------------------- families


def test_forty_families_with_balrog_names() -> None:
    assert len(FAMILIES) == len(set(FAMILIES)) == 40
    assert set(IN_DISTRIBUTION) | set(HELD_OUT) == set(FAMILIES)
    assert not set(IN_DISTRIBUTION) & set(HELD_OUT)
    assert len(HELD_OUT) == 18
    assert all("break_stop" in f or "make_you" in f or "wall" in f for f in HELD_OUT)
    with pytest.raises(KeyError):
        parse_family("goto_lose")


@pytest.mark.parametrize("family", FAMILIES)
def test_generation_is_deterministic_and_fits_the_family(family: str) -> None:
    level = generate(family, 7)
    assert generate(family, 7) == level
    assert generate(family, 8).state != level.state
    assert generate(family, 7, draw=1).state != level.state
    rules = rules_of(level.board, level.state).lines
    pieces = decode(level.board, level.state)
    assert "baba is you" in rules
    assert status_of(level.board, level.state) == "playing"
    assert len([p for p in pieces if p.name == "baba" and not p.text]) == 1
    spec = parse_family(family)
    wins = [r for r in rules if r.endswith(" is win")]
    goal_kind = level.outline.rsplit("goto[", 1)[1].rstrip("]")
    if spec.goal in ("goto_win", "make_you"):
        assert f"{goal_kind} is win" in wins
    else:
        assert f"{goal_kind} is win" not in wins
    assert len(wins) == (1 if spec.distractor_win_rule else 0) + (
        spec.goal in ("goto_win", "make_you")
    )
    if spec.two_room:
        walls = [(p.x, p.y) for p in pieces if p.name == "wall" and not p.text]
        assert walls == [(DIVIDER, y) for y in range(level.board.height)]
        assert ("wall is stop" in rules) == (spec.stop != "broken")
    else:
        assert "wall is stop" not in rules
    objects = {p.name for p in pieces if not p.text} - {"baba", "wall"}
    two_objects = spec.distractor_object or spec.goal in (
        "make_you",
        "make_you-make_win",
        "make_wall_win",
    )
    assert len(objects) == (2 if two_objects else 1)
    if spec.stop == "break" and spec.goal != "make_wall_win":
        goal = [p for p in pieces if not p.text and p.name == goal_kind]
        assert all(p.x > DIVIDER for p in goal)  # behind the wall


def test_a_draw_without_a_plan_is_replaced_and_recorded() -> None:
    # the first draw of this seed has no plan within the limit; the search proves it
    level, entry = find_level("make_win-distr_obj_rule", 3)
    assert entry.draw >= 1
    assert entry.rejected[0]["draw"] == 0
    first = generate("make_win-distr_obj_rule", 3, 0)
    assert shortest_plan(first.board, first.state, STEP_LIMIT).plan is None
    assert level == generate("make_win-distr_obj_rule", 3, entry.draw)


# --------------------------------------------------------------------------- the domain


@pytest.fixture(scope="module")
def baba() -> BabaIsAIDomain:
    return BabaIsAIDomain(variant="alma")


def first_task(domain: BabaIsAIDomain, family: str) -> Task:
    split: Split = "eval_out_of_distribution" if family in HELD_OUT else "train"
    return next(t for t in domain.tasks(split) if t.params["family"] == family)


def test_implements_the_contract_and_is_registered(baba: BabaIsAIDomain) -> None:
    assert isinstance(baba, Domain)
    assert isinstance(get_domain("babaisai"), BabaIsAIDomain)
    assert isinstance(baba.make_env(baba.tasks("train")[0]), TextEnv)
    assert baba.name == "babaisai" and baba.step_limit == 20
    assert "{" not in baba.description and "{" not in baba.instructions
    assert "MIT" in baba.description and "eval_out_of_distribution" in baba.description
    for action in ACTIONS:
        assert action in baba.instructions
    assert "20 steps" in baba.instructions
    assert baba.details["families"] == {
        "train": list(IN_DISTRIBUTION),
        "eval_in_distribution": list(IN_DISTRIBUTION),
        "eval_out_of_distribution": list(HELD_OUT),
    }


def test_check_domain_passes(baba: BabaIsAIDomain) -> None:
    assert check_domain(baba, tasks_per_split=4) == []


@pytest.mark.parametrize(
    ("split", "infix", "count"),
    [
        ("train", "train", 110),
        ("eval_in_distribution", "eval-id", 110),
        ("eval_out_of_distribution", "eval-ood", 90),
    ],
)
def test_task_ids_and_params(baba: BabaIsAIDomain, split: Split, infix: str, count: int) -> None:
    tasks = baba.tasks(split)
    assert len(tasks) == count == len({t.id for t in tasks})
    for task in tasks:
        family = task.params["family"]
        assert re.fullmatch(rf"babaisai-alma-{infix}-{re.escape(family)}-\d{{3}}", task.id)
        assert task.split == split and "babaisai" not in task.description
        assert 1 <= task.params["optimal_steps"] <= STEP_LIMIT
    assert tasks[3].id == f"babaisai-alma-{infix}-{tasks[3].params['family']}-003"


def test_splits_are_disjoint(baba: BabaIsAIDomain) -> None:
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not {t.id for t in baba.tasks(a)} & {t.id for t in baba.tasks(b)}
                pairs_a = {(t.params["family"], t.seed) for t in baba.tasks(a)}
                assert not pairs_a & {(t.params["family"], t.seed) for t in baba.tasks(b)}
    train = {baba.level(t)[0].fingerprint() for t in baba.tasks("train")}
    assert len(train) == 110
    assert not train & {baba.level(t)[0].fingerprint() for t in baba.tasks("eval_in_distribution")}


def test_listing_tasks_is_cheap_and_never_searches(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_search(*args: object, **kwargs: object) -> None:
        raise AssertionError("tasks() must not search")

    monkeypatch.setattr(catalogue_module, "shortest_plan", no_search)
    started = time.perf_counter()
    domain = BabaIsAIDomain(variant="alma")
    total = sum(len(domain.tasks(split)) for split in SPLITS)
    assert total == 310
    assert time.perf_counter() - started < 1.0
    domain.make_env(domain.tasks("train")[40]).reset()  # a shipped level needs no search either


def test_bad_arguments(baba: BabaIsAIDomain) -> None:
    with pytest.raises(UsageError):
        baba.tasks("test")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        BabaIsAIDomain(instances_per_family=-1)
    with pytest.raises(UnknownDomainError):
        baba.make_env(Task("babaisai-x", "train", "x", 0, {"family": "nope"}))


def test_shipped_catalogue_matches_the_generators_and_every_plan_wins(baba: BabaIsAIDomain) -> None:
    entries = shipped()
    tasks = [t for split in SPLITS for t in baba.tasks(split)]
    assert len(entries) == len(tasks) == 310
    for task in tasks:
        level, entry = baba.level(task)
        assert (
            level.fingerprint()
            == entry.fingerprint
            == generate(entry.family, task.seed, entry.draw).fingerprint()
        )
        assert [r["draw"] for r in entry.rejected] == list(range(entry.draw))
        env = baba.make_env(task)
        env.reset()
        moves = baba.solve(task)
        assert len(moves) == task.params["optimal_steps"]
        for i, move in enumerate(moves):
            tr = env.step(move)
            assert tr.done == (i == len(moves) - 1), (task.id, i)
        assert tr.success and tr.reward == 1.0, task.id


@pytest.mark.domain
@pytest.mark.parametrize("family", FAMILIES)
def test_the_solver_finds_the_plan_and_replaying_it_wins(baba: BabaIsAIDomain, family: str) -> None:
    # the family's catalogued level that the search reached fastest (keeps the test quick)
    tasks = [t for split in SPLITS for t in baba.tasks(split) if t.params["family"] == family]
    task = min(tasks, key=lambda t: baba.level(t)[1].states)
    level, entry = baba.level(task)
    search = shortest_plan(level.board, level.state, STEP_LIMIT)
    assert search.plan is not None and len(search.plan) == entry.optimal_steps
    env = baba.make_env(task)
    env.reset()
    for move in search.plan:
        tr = env.step(move)
    assert tr.done and tr.success


@pytest.mark.domain
def test_a_random_policy_rarely_wins(baba: BabaIsAIDomain) -> None:
    rng = random.Random(0)
    wins = episodes = 0
    for family in FAMILIES:
        task = first_task(baba, family)
        env = baba.make_env(task)
        family_wins = 0
        for _ in range(10):
            env.reset()
            episodes += 1
            for _step in range(STEP_LIMIT):
                tr = env.step(rng.choice(ACTIONS))
                if tr.done:
                    family_wins += tr.success
                    break
        wins += family_wins
        if task.params["optimal_steps"] >= 8:  # rule-changing levels: never by chance
            assert family_wins == 0, family
    assert wins / episodes < 0.15, wins / episodes


# --------------------------------------------------------------------------- the environment


def test_reset_is_deterministic_and_an_env_is_independent(baba: BabaIsAIDomain) -> None:
    task = first_task(baba, "two_room-break_stop-goto_win")
    a, b = baba.make_env(task), baba.make_env(task)
    first = a.reset()
    assert first.text == b.reset().text and first.actions == ACTIONS
    a.step("up")
    a.step("left")
    assert b.step("idle").observation.text == first.text
    assert a.reset().text == first.text
    assert first.text.startswith("Active rules:\n") and "wall is stop" in first.text
    assert first.info["optimal_steps"] == task.params["optimal_steps"]


def test_commands_synonyms_and_unknown_actions(baba: BabaIsAIDomain) -> None:
    env = baba.make_env(first_task(baba, "goto_win"))
    start = env.reset().text
    tr = env.step("dance")
    assert "Unknown action 'dance'" in tr.observation.text and not tr.done
    assert tr.info["valid_action"] is False and tr.info["steps"] == 1
    assert tr.observation.text.endswith(start)
    moved = env.step("Move Up.").observation.text
    env.reset()
    assert env.step("up").observation.text == moved


def test_a_finished_episode_stays_finished(baba: BabaIsAIDomain) -> None:
    task = first_task(baba, "goto_win")
    env = baba.make_env(task)
    env.reset()
    for move in baba.solve(task):
        tr = env.step(move)
    assert tr.done and tr.success and "solved" in tr.observation.text
    again = env.step("left")
    assert again.done and again.success and again.reward == 0.0


def test_losing_by_breaking_baba_is_you() -> None:
    env = BabaIsAIEnv(BOARD, state(rule_tiles("baba", "you", 0, 1), obj("baba", 2, 2)))
    env.reset()
    tr = env.step("up")
    assert tr.done and not tr.success and tr.reward == 0.0
    assert "lost" in tr.observation.text and tr.info["status"] == "lost"


def test_render_draws_the_board(baba: BabaIsAIDomain) -> None:
    task = first_task(baba, "two_room-make_you")
    env = baba.make_env(task)
    env.reset()
    picture = env.render()
    rows = picture.splitlines()
    assert rows[0] == rows[8] == "+" + "-" * 63 + "+"
    assert sum(row.count("@baba") for row in rows) == 1
    assert "BABA" in picture and "YOU" in picture and "wall" in picture
    assert "rules: " in rows[-1]


def test_envs_in_threads_agree_with_one_thread(baba: BabaIsAIDomain) -> None:
    tasks = [first_task(baba, f) for f in FAMILIES[::5]]

    def run(task: Task) -> list[str]:
        env = baba.make_env(task)
        texts = [env.reset().text]
        for move in baba.solve(task):
            texts.append(env.step(move).observation.text)
        env.close()
        return texts

    alone = [run(t) for t in tasks]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(run, tasks)) == alone


def test_levels_beyond_the_catalogue_are_searched_once_and_cached_on_disk(
    domain_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    domain = BabaIsAIDomain(instances_per_family=6, variant="alma")
    task = next(
        t
        for t in domain.tasks("train")
        if t.params["family"] == "goto_win" and t.id.endswith("005")
    )
    assert "optimal_steps" not in task.params  # not in the shipped catalogue
    moves = domain.solve(task)
    assert (domain_cache / "babaisai" / "alma" / "levels" / f"goto_win-{task.seed}.json").is_file()

    def no_search(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached level should be used")

    monkeypatch.setattr(catalogue_module, "shortest_plan", no_search)
    again = BabaIsAIDomain(instances_per_family=6, variant="alma")
    assert again.solve(task) == moves
    env = again.make_env(task)
    env.reset()
    for move in moves:
        tr = env.step(move)
    assert tr.success
