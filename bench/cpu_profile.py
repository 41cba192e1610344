"""Run a module under cProfile with a CPU clock (time.process_time: waits on the database
cost nothing), writing the stats to $PROFILE_OUT when it exits. `bench/applier_load.py
--profile` runs the applier with it:

    PROFILE_OUT=/tmp/x.prof python bench/cpu_profile.py flask --app wsgi billing apply
"""

from __future__ import annotations

import cProfile
import os
import runpy
import sys
import time


def main() -> None:
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profile.disable()
        profile.dump_stats(os.environ["PROFILE_OUT"])


if __name__ == "__main__":
    main()
