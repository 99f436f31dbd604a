"""The task timer callback: durations summed per task name, slowest first."""


from ansible_collections.metal.kafka.plugins.callback import task_timer


class Task:
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


class Display:
    def __init__(self):
        self.lines = []

    def display(self, text, stderr=False):
        assert stderr, "the summary goes to standard error"
        self.lines.append(text)


def test_slowest_orders_by_time_then_name():
    assert task_timer.slowest({"a": 1.0, "b": 3.0, "c": 3.0, "d": 0.5}, 3) == [("b", 3.0), ("c", 3.0), ("a", 1.0)]


def test_tasks_are_timed_until_the_next_one_and_summed_by_name(monkeypatch):
    clock = iter([0.0, 0.0, 2.0, 2.0, 2.5, 2.5, 7.5, 8.0])
    monkeypatch.setattr(task_timer.time, "monotonic", lambda: next(clock))
    cb = task_timer.CallbackModule()
    cb._display = Display()
    monkeypatch.setattr(cb, "get_option", lambda name: 15)
    cb.v2_playbook_on_task_start(Task("install"), False)  # 0.0
    cb.v2_playbook_on_task_start(Task("wait"), False)  # 2.0: install took 2.0
    cb.v2_playbook_on_handler_task_start(Task("install"))  # 2.5: wait took 0.5
    cb.v2_playbook_on_stats(None)  # 7.5: install again 5.0; total 8.0
    assert cb._display.lines == ["slowest tasks (of 2, run 8 s):", "      7.0 s  install", "      0.5 s  wait"]
