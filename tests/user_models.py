"""Model classes a user might bring with ``python:<module>:<Class>`` (test_llm_stack.py)."""

from alma.llm.scripted import ScriptedLLM, first_action_policy


class FirstActionModel(ScriptedLLM):
    """Always takes the first admissible action."""

    def __init__(self) -> None:
        super().__init__(first_action_policy)
        self.model = "first-action"


class NotAModel:
    """Has no ``complete``."""
