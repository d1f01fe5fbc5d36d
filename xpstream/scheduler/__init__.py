"""The batch-job scheduler of `xp up`: cron expressions per job, one run at a time per job.

- :mod:`.cron`: parse and validate the schedules, next fire times (pure).
- :mod:`.plan`: which jobs are due, which are skipped because their previous run still goes (pure).
- :mod:`.runner`: the thread that sleeps until the next fire time and runs the jobs (thin).
- :mod:`.store`: each run as a row of ``xp.job_runs``.
- :mod:`.settings`: ``XP_SCHEDULE_*``.

Missed runs (while `xp up` was down or a run was still going) are not replayed: the next run after a
restart is the next fire time after the start (docs/decisions/0010-scheduler-and-up.md).
"""

from xpstream.scheduler.cron import JobSchedule, next_fire, parse_schedules
from xpstream.scheduler.plan import Dispatch, SchedulePlan
from xpstream.scheduler.settings import SchedulerSettings

__all__ = ["Dispatch", "JobSchedule", "SchedulePlan", "SchedulerSettings", "next_fire", "parse_schedules"]
