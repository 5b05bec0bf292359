"""Running a bring-up's steps in order, skipping those whose artifact is there, with an
overall progress bar whose ETA comes from each step's rough cost."""

import os
import time
from typing import Callable, Dict, List, Optional, Tuple

from hetero_infer.bringup import artifacts, steps
from hetero_infer.bringup.steps import Context, Settings

#: (name, artifact, is a directory, function, rough cost in seconds for the ETA)
STEPS: Tuple[Tuple[str, str, bool, Callable, Callable[[Settings], float]], ...] = (
    ('environment', 'environment.json', False, steps.environment, lambda s: 2.0),
    ('engines', 'engines.json', False, steps.engines,
     lambda s: 3.0 * len(s.models) * (60 if s.backend == 'tensorrt' else 1)),
    ('isolated', 'isolated.json', False, steps.isolated,
     lambda s: 0.1 * len(s.models) * s.repeats),
    ('fit', 'fit.json', False, steps.fit, lambda s: 3.0),
    ('coruns', 'coruns.json', False, steps.coruns,
     lambda s: 0.2 * len(s.models) * s.corun_repeats),
    ('profile', 'profile', True, steps.profile, lambda s: min(s.profile_budget_s,
                                                              0.1 * s.profile_samples)),
    ('train', 'model', True, steps.train,
     lambda s: 10.0 + 10.0 * len(s.candidates) * max(1, s.search_iter)),
    ('plan', 'plan.json', False, steps.plan, lambda s: 5.0 + 0.2 * s.plan_samples),
    ('serve', 'serve.json', False, steps.serve,
     lambda s: s.serve_s * (s.time_scale if s.backend == 'emulated' else 1.0) + 5.0),
)
TIMINGS_FILE = 'timings.json'


def run(settings: Settings, out: str, *, log: Callable[[str], None] = print,
        only: Optional[List[str]] = None) -> dict:
    """Run the steps not done yet, then write the report; returns the report document.

    :param only: stop after these steps (names of :data:`STEPS`), for a partial bring-up.
    :raises ConfigError: ``out`` holds a bring-up with other settings; a step's own errors.
    """
    from tqdm import tqdm

    from hetero_infer.bringup import report
    os.makedirs(out, exist_ok=True)
    artifacts.check_settings(out, settings.to_dict())
    timings_path = os.path.join(out, TIMINGS_FILE)
    timings: Dict[str, float] = (artifacts.read_json(timings_path)
                                 if os.path.exists(timings_path) else {})

    def bar(**kw):
        return tqdm(dynamic_ncols=True, leave=False, **kw)

    ctx = Context(settings, out, bar, log)
    todo = [st for st in STEPS if only is None or st[0] in only]
    costs = {name: cost(settings) for name, _, _, _, cost in todo}
    done = {name: os.path.exists(os.path.join(out, art)) for name, art, _, _, _ in todo}
    try:
        with tqdm(total=round(sum(costs.values())), desc='bringup', unit='s est',
                  dynamic_ncols=True,
                  bar_format='{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}') as main:
            main.update(round(sum(costs[n] for n in costs if done[n])))
            for name, art, is_dir, fn, _ in todo:
                path = os.path.join(out, art)
                if done[name]:
                    log('[skip] %s: %s is there' % (name, art))
                    continue
                main.set_description('bringup: %s' % name)
                t0 = time.perf_counter()
                if is_dir:
                    artifacts.fill_directory(path, lambda d, fn=fn: fn(ctx, d))
                else:
                    artifacts.write_json(path, fn(ctx))
                timings[name] = round(time.perf_counter() - t0, 2)
                artifacts.write_json(timings_path, timings)
                log('[done] %s: %s (%.1f s)' % (name, art, timings[name]))
                main.update(round(costs[name]))
    finally:
        ctx.close()
    return report.write(out, {n: timings[n] for n, *_ in STEPS if n in timings})
