"""Evaluation scenarios: application sets with request rates and SLOs, loaded from YAML.

File format (``format: hetero_infer.scenarios/1``; ``config/scenarios.yaml`` is an example)::

    format: hetero_infer.scenarios/1
    platform: xavier              # default platform of every scenario
    defaults:                     # optional; any scenario or application may override
      slo_scale: 5.0              # SLO = slo_scale x isolated latency on the fastest processor
      load: 0.85                  # with ratios: fraction of the interference-free capacity
    scenarios:
      - name: vision_mix_r1
        load: 0.9                 # optional override
        applications:
          - {model: resnet50, ratio: 2}            # rate from ratio x load (see below)
          - {model: googlenet, ratio: 1, slo_scale: 4}
          - {name: kws, model: mobilenet_v2, ratio: 1, slo_ms: 10, processors: [dla0, dla1]}
      - name: fixed_rates
        applications:
          - {model: vgg16, rate_hz: 40}            # explicit rate, no load needed
          - {model: alexnet, rate_hz: 200, slo_ms: 12}
        faults: [dla1:error@5+5]  # optional: injected processor faults (hetero-infer simulate)

Each application gives ``model`` (a zoo name or a path to a layer table), either ``rate_hz`` or
``ratio`` (all applications of a scenario use the same one), and optionally ``slo_ms`` or
``slo_scale``, ``name`` (default: the model name, suffixed if repeated) and ``processors``.
A scenario's optional ``faults`` lists processor faults ``PROC:KIND@SECONDS[+DURATION]`` (see
:mod:`hetero_infer.core.faults`) that ``hetero-infer simulate`` injects into the twin.

With ratios, the total rate is ``load`` x the **interference-free capacity** of the platform for
that mix: the largest total rate, ratios fixed, at which some split of every application's
requests over its processors keeps every processor's isolated busy time under 100% (a linear
program over the isolated latencies). Memory contention makes the real capacity lower, so loads
near 1 stress the SoC; the evaluation uses such loads because at light load every scheduler is
equally good.
"""

import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from hetero_infer.core.model import load_model
from hetero_infer.core.workload import App
from hetero_infer.errors import ConfigError, ModelError

SCENARIOS_FORMAT = 'hetero_infer.scenarios/1'
DEFAULT_SLO_SCALE = 5.0
DEFAULT_LOAD = 0.85

_APP_KEYS = {'name', 'model', 'rate_hz', 'ratio', 'slo_ms', 'slo_scale', 'processors'}
_SCENARIO_KEYS = {'name', 'platform', 'load', 'slo_scale', 'applications', 'description',
                  'faults'}


def default_scenarios_path() -> str:
    """``config/scenarios.yaml`` of the source tree or of the installed ROS share directory."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidates = [os.path.join(here, 'config', 'scenarios.yaml')]
    try:
        from ament_index_python.packages import get_package_share_directory  # noqa: F401
        candidates.append(os.path.join(get_package_share_directory('hetero_infer'), 'config',
                                       'scenarios.yaml'))
    except Exception:  # not installed as a ROS package
        pass
    for path in candidates:
        if os.path.exists(path):
            return path
    return candidates[0]


@dataclass
class AppSpec:
    name: str
    model: str
    rate_hz: Optional[float]
    ratio: Optional[float]
    slo_ms: Optional[float]
    slo_scale: float
    processors: tuple


@dataclass
class Scenario:
    """One scenario as written; :meth:`build` turns it into :class:`App` objects for a platform."""

    name: str
    platform: str
    load: float
    applications: List[AppSpec]
    description: str = ''
    faults: tuple = ()      # Fault objects (hetero_infer.core.faults)

    def build(self, platform) -> List[App]:
        """Applications with rates and SLOs resolved on ``platform``.

        :raises ConfigError: a processor the platform lacks (in an application or a fault), or a
            model it cannot run.
        """
        from hetero_infer.core.faults import check_processors
        check_processors(self.faults, platform.processor_ids, 'scenario %s' % self.name)
        models = []
        for spec in self.applications:
            try:
                models.append(load_model(spec.model))
            except ModelError as exc:
                raise ConfigError('scenario %s: %s' % (self.name, exc)) from None
        allowed = []
        for spec, model in zip(self.applications, models):
            procs = spec.processors or tuple(platform.processor_ids)
            for p in procs:
                if p not in platform.processor_ids:
                    raise ConfigError('scenario %s, application %s: platform %s has no '
                                      'processor %r (it has %s)'
                                      % (self.name, spec.name, platform.name, p,
                                         list(platform.processor_ids)))
            ok = tuple(p for p in procs if platform.can_run(model, p))
            if not ok:
                raise ConfigError('scenario %s, application %s: model %s can run on none of %s'
                                  % (self.name, spec.name, model.name, list(procs)))
            allowed.append(ok)
        if self.applications[0].ratio is not None:
            ratios = [spec.ratio for spec in self.applications]
            cap = fluid_capacity_hz(platform, models, ratios, allowed)
            total = sum(ratios)
            rates = [self.load * cap * r / total for r in ratios]
        else:
            rates = [spec.rate_hz for spec in self.applications]
        apps = []
        for spec, model, procs, rate in zip(self.applications, models, allowed, rates):
            slo = spec.slo_ms
            if slo is None:
                slo = spec.slo_scale * min(platform.isolated_latency_ms(model, p) for p in procs)
            apps.append(App(spec.name, model, float(rate), float(slo),
                            tuple(spec.processors)))
        return apps


def fluid_capacity_hz(platform, models: Sequence, ratios: Sequence[float],
                      allowed: Sequence[Sequence[str]]) -> float:
    """Largest total request rate (ratios fixed) the processors sustain at isolated latencies.

    Linear program: maximise ``lam`` subject to ``sum_p x[i,p] = ratio_i * lam`` and
    ``sum_i x[i,p] * latency_s[i,p] <= 1`` for every processor, ``x >= 0``.
    """
    from scipy.optimize import linprog

    procs = list(platform.processor_ids)
    n_apps, n_procs = len(models), len(procs)
    total = float(sum(ratios))
    share = [r / total for r in ratios]
    n_var = n_apps * n_procs + 1          # x[i,p] then lam
    c = np.zeros(n_var)
    c[-1] = -1.0
    a_eq = np.zeros((n_apps, n_var))
    b_eq = np.zeros(n_apps)
    bounds = []
    for i in range(n_apps):
        for j, p in enumerate(procs):
            a_eq[i, i * n_procs + j] = 1.0
            bounds.append((0.0, None) if p in allowed[i] else (0.0, 0.0))
        a_eq[i, -1] = -share[i]
    bounds.append((0.0, None))
    a_ub = np.zeros((n_procs, n_var))
    b_ub = np.ones(n_procs)
    for j, p in enumerate(procs):
        for i, model in enumerate(models):
            if p in allowed[i]:
                a_ub[j, i * n_procs + j] = platform.isolated_latency_ms(model, p) / 1000.0
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds,
                  method='highs')
    if not res.success:
        raise ConfigError('capacity LP failed for models %s: %s'
                          % ([m.name for m in models], res.message))
    return float(res.x[-1])


def _number(value, where: str, key: str, *, positive: bool = True) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError('%s: %s must be a number, got %r' % (where, key, value)) from None
    if not math.isfinite(x) or (x <= 0 if positive else x < 0):
        raise ConfigError('%s: %s must be %s, got %r'
                          % (where, key, 'positive' if positive else '>= 0', value))
    return x


def parse_scenarios(doc, *, where: str = '<scenarios>') -> List[Scenario]:
    """Validate a scenarios document (already parsed YAML) into :class:`Scenario` objects.

    :raises ConfigError: with the file, scenario and key named.
    """
    if not isinstance(doc, dict):
        raise ConfigError('%s: expected a mapping at the top level' % where)
    fmt = doc.get('format', SCENARIOS_FORMAT)
    if fmt != SCENARIOS_FORMAT:
        raise ConfigError('%s: unsupported format %r (expected %r)' % (where, fmt,
                                                                       SCENARIOS_FORMAT))
    defaults = doc.get('defaults') or {}
    if not isinstance(defaults, dict):
        raise ConfigError('%s: defaults must be a mapping' % where)
    default_platform = str(doc.get('platform', 'xavier'))
    default_scale = _number(defaults.get('slo_scale', DEFAULT_SLO_SCALE), where, 'slo_scale')
    default_load = _number(defaults.get('load', DEFAULT_LOAD), where, 'load')
    items = doc.get('scenarios')
    if not isinstance(items, list) or not items:
        raise ConfigError('%s: "scenarios" must be a non-empty list' % where)
    out: List[Scenario] = []
    seen = set()
    for k, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError('%s: scenario #%d must be a mapping' % (where, k))
        name = str(item.get('name') or 'scenario_%d' % k)
        w = '%s: scenario %s' % (where, name)
        unknown = set(item) - _SCENARIO_KEYS
        if unknown:
            raise ConfigError('%s: unknown keys %s (allowed: %s)'
                              % (w, sorted(unknown), sorted(_SCENARIO_KEYS)))
        if name in seen:
            raise ConfigError('%s: duplicate scenario name %r' % (where, name))
        seen.add(name)
        load = _number(item.get('load', default_load), w, 'load')
        scale = _number(item.get('slo_scale', default_scale), w, 'slo_scale')
        apps_doc = item.get('applications')
        if not isinstance(apps_doc, list) or not apps_doc:
            raise ConfigError('%s: "applications" must be a non-empty list' % w)
        specs: List[AppSpec] = []
        names: Dict[str, int] = {}
        for a in apps_doc:
            if not isinstance(a, dict) or 'model' not in a:
                raise ConfigError('%s: each application needs at least "model", got %r'
                                  % (w, a))
            unknown = set(a) - _APP_KEYS
            if unknown:
                raise ConfigError('%s: application %s has unknown keys %s (allowed: %s)'
                                  % (w, a.get('model'), sorted(unknown), sorted(_APP_KEYS)))
            model = str(a['model'])
            base = str(a.get('name') or os.path.splitext(os.path.basename(model))[0])
            names[base] = names.get(base, 0) + 1
            app_name = base if names[base] == 1 else '%s_%d' % (base, names[base])
            aw = '%s, application %s' % (w, app_name)
            has_rate, has_ratio = 'rate_hz' in a, 'ratio' in a
            if has_rate == has_ratio:
                raise ConfigError('%s: give exactly one of rate_hz or ratio' % aw)
            if 'slo_ms' in a and 'slo_scale' in a:
                raise ConfigError('%s: give slo_ms or slo_scale, not both' % aw)
            procs = a.get('processors') or ()
            if isinstance(procs, str) or not isinstance(procs, (list, tuple)):
                raise ConfigError('%s: processors must be a list of ids, got %r' % (aw, procs))
            specs.append(AppSpec(
                name=app_name, model=model,
                rate_hz=_number(a['rate_hz'], aw, 'rate_hz', positive=False) if has_rate
                else None,
                ratio=_number(a['ratio'], aw, 'ratio') if has_ratio else None,
                slo_ms=_number(a['slo_ms'], aw, 'slo_ms') if 'slo_ms' in a else None,
                slo_scale=_number(a.get('slo_scale', scale), aw, 'slo_scale'),
                processors=tuple(str(p) for p in procs)))
        if len({s.ratio is None for s in specs}) != 1:
            raise ConfigError('%s: mix of rate_hz and ratio; use one kind for all applications'
                              % w)
        faults = item.get('faults') or []
        if not isinstance(faults, list):
            raise ConfigError('%s: faults must be a list of PROC:KIND@SECONDS[+DURATION], got %r'
                              % (w, faults))
        from hetero_infer.core.faults import parse_faults
        try:
            parsed = parse_faults([str(f) for f in faults])
        except ConfigError as exc:
            raise ConfigError('%s: %s' % (w, exc)) from None
        out.append(Scenario(name=name, platform=str(item.get('platform', default_platform)),
                            load=load, applications=specs,
                            description=str(item.get('description', '')), faults=parsed))
    return out


def load_scenarios(path: Optional[str] = None) -> List[Scenario]:
    """Read and validate a scenarios YAML file (default: ``config/scenarios.yaml``).

    :raises ConfigError: missing file, bad YAML, or invalid content.
    """
    from hetero_infer.core.yaml_file import read_yaml

    path = path or default_scenarios_path()
    return parse_scenarios(read_yaml(path, 'scenarios'), where=path)


def find_scenario(scenarios: Sequence[Scenario], name: str) -> Scenario:
    for s in scenarios:
        if s.name == name:
            return s
    raise ConfigError('unknown scenario %r (known: %s)'
                      % (name, ', '.join(s.name for s in scenarios)))
