"""The evaluation protocol: score a memory design on a task list, with error bars and cost."""
