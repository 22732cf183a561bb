# SPDX-License-Identifier: GPL-3.0-or-later
"""Test helper callback: writes each playbook run's plays, tasks and per-host results to a file.

For runs whose stdout the tests cannot switch to ``ansible.posix.json`` (molecule reads the default
callback's recap): ``tests/integration/test_molecule.py`` enables it with
``ANSIBLE_CALLBACK_PLUGINS=tests/integration/callback_plugins ANSIBLE_CALLBACKS_ENABLED=record_plays``
and ``VIRTIOFS_RECORD_DIR=DIR``. Every run writes ``DIR/NN-<playbook file stem>.json`` (NN counts
the runs, from 01) in the layout of ``ansible.posix.json`` (``plays`` -> ``tasks`` -> ``hosts``, task
start/end times, ``stats``), so conftest's ``PlaybookResult`` reads it. Without the variable it
writes nothing. Assumes the linear strategy (every host finishes a task before the next starts).
"""
from __future__ import annotations

DOCUMENTATION = """
name: record_plays
type: notification
short_description: Write each playbook run's results to a JSON file (integration tests)
description:
  - Writes C(VIRTIOFS_RECORD_DIR/NN-<playbook>.json) in the layout of ansible.posix.json.
requirements:
  - enabled in callbacks_enabled, VIRTIOFS_RECORD_DIR set
"""

import datetime
import json
import os

from ansible.parsing.ajson import AnsibleJSONEncoder
from ansible.plugins.callback import CallbackBase


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "record_plays"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display)
        self._dir = os.environ.get("VIRTIOFS_RECORD_DIR")
        self._stem = "playbook"
        self._plays = []

    def v2_playbook_on_start(self, playbook):
        self._stem = os.path.splitext(os.path.basename(playbook._file_name))[0]

    def v2_playbook_on_play_start(self, play):
        self._plays.append({"play": {"name": play.get_name(), "duration": {"start": _now()}}, "tasks": []})

    def _task_start(self, task):
        if self._plays:
            self._plays[-1]["tasks"].append({"task": {"name": task.get_name(), "duration": {"start": _now()}},
                                             "hosts": {}})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._task_start(task)

    def _record(self, result, **flags):
        if not self._plays or not self._plays[-1]["tasks"]:
            return
        entry = self._plays[-1]["tasks"][-1]
        data = dict(result._result)
        data.update(flags)
        data["action"] = result._task.action
        entry["hosts"][result._host.get_name()] = data
        end = _now()
        entry["task"]["duration"]["end"] = end
        self._plays[-1]["play"]["duration"]["end"] = end

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        if not self._dir:
            return
        os.makedirs(self._dir, exist_ok=True)
        number = len([n for n in os.listdir(self._dir) if n.endswith(".json")]) + 1
        output = {"plays": self._plays,
                  "stats": {host: stats.summarize(host) for host in sorted(stats.processed)}}
        path = os.path.join(self._dir, "%02d-%s.json" % (number, self._stem))
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(output, handle, cls=AnsibleJSONEncoder, sort_keys=True)
        os.replace(path + ".tmp", path)
