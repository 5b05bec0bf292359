"""Evaluation scenarios: application sets with request rates and SLOs, loaded from YAML.

File format (``format: hetero_infer.scenarios/1``; ``config/scenarios.yaml`` is an example)::

    format: hetero_infer.scenarios/1
    platform: xavier              # default platform of every scenario
    defaults:                     # optional; any scenario or application may override
      slo_scale: 5.0              # SLO = slo_scale x isolated latency on the fastest processor
                                  # (plus the model's host post-processing, detectors)
      load: 0.85                  # with ratios: fraction of the interference-free capacity
    scenarios:
      - name: vision_mix_r1
        load: 0.9                 # optional override
        applications:
          - {model: resnet50, ratio: 2}            # rate from ratio x load (see below)
          - {model: googlenet, ratio: 1, slo_scale: 4}
          - {name: kws, model: mobilenet_v2, ratio: 1, slo_ms: 10, processors: [dla0, dla1],
             weight: 2, min_attainment: 0.9}      # criticality (defaults 1 and 0)
      - name: fixed_rates
        applications:
          - {model: vgg16, rate_hz: 40}            # explicit rate, no load needed
          - {model: alexnet, rate_hz: 200, slo_ms: 12}
        faults: [dla1:error@5+5]  # optional: injected processor faults (hetero-infer simulate)

Each application gives ``model`` (a zoo name or a path to a layer table), either ``rate_hz`` or
``ratio`` (all applications of a scenario use the same one), and optionally ``slo_ms`` or
``slo_scale``, ``name`` (default: the model name; names must differ), ``processors``, and its
criticality: ``weight`` (how much a request served within the SLO counts in goodput-type goals,
default 1) and ``min_attainment`` (the share of its requests that must meet the SLO, which the
searched schedulers plan for first; default 0).
A scenario's optional ``faults`` lists processor faults ``PROC:KIND@SECONDS[+DURATION]`` (see
:mod:`hetero_infer.twin.faults`) that ``hetero-infer simulate`` injects into the twin.

With ratios, the total rate is ``load`` x the **interference-free capacity** of the platform for
that mix: the largest total rate, ratios fixed, at which some split of every application's
requests over its processors keeps every processor's isolated busy time under 100% (a linear
program over the isolated latencies). Memory contention makes the real capacity lower, so loads
near 1 stress the SoC; the evaluation uses such loads because at light load every scheduler is
equally good.
"""

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from hetero_infer.errors import ConfigError, ModelError
from hetero_infer.models.zoo import load_model
from hetero_infer.workload.requests import MAX_WEIGHT, App

SCENARIOS_FORMAT = 'hetero_infer.scenarios/1'
DEFAULT_SLO_SCALE = 5.0
DEFAULT_LOAD = 0.85



def default_scenarios_path() -> str:
    """``config/scenarios.yaml`` of the package (:mod:`hetero_infer.resources`)."""
    from hetero_infer.resources import SOURCE_ROOT, find_resource
    try:
        return find_resource('config', 'scenarios.yaml')
    except ConfigError:
        return os.path.join(SOURCE_ROOT, 'config', 'scenarios.yaml')  # named by the reader


@dataclass
class AppSpec:
    name: str
    model: str
    rate_hz: Optional[float]
    ratio: Optional[float]
    slo_ms: Optional[float]
    slo_scale: float
    processors: tuple
    weight: float = 1.0
    min_attainment: float = 0.0


@dataclass
class Scenario:
    """One scenario as written; :meth:`build` turns it into :class:`App` objects for a platform."""

    name: str
    platform: Optional[str]      # the file's ``platform:`` (None: not given)
    load: float
    applications: List[AppSpec]
    description: str = ''
    faults: tuple = ()      # Fault objects (hetero_infer.twin.faults)

    def build(self, platform) -> List[App]:
        """Applications with rates and SLOs resolved on ``platform``.

        :raises ConfigError: a processor the platform lacks (in an application or a fault), or a
            model it cannot run.
        """
        from hetero_infer.twin.faults import check_processors
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
                # a request's isolated latency includes its host post-processing (detectors)
                slo = spec.slo_scale * (min(platform.isolated_latency_ms(model, p)
                                            for p in procs) + model.postprocess_ms)
            apps.append(App(spec.name, model, float(rate), float(slo),
                            tuple(spec.processors), spec.weight, spec.min_attainment))
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


def _scenarios_schema() -> dict:
    """The scenario file format, declared once: every key, its type and its range.

    Bounds keep a typo from running away: a rate is at most 10 kHz (the fastest zoo model runs
    about 2 kHz alone on Xavier), a load at most 4 x the capacity, an SLO at most a minute.
    New keys are added here (and read in :func:`parse_scenarios`).
    """
    from hetero_infer.io.schema import number, strict
    slo_scale = number(0.0, 1000.0, lo_open=True)
    load = number(0.0, 4.0, lo_open=True)
    app = strict({
        'name': {'type': 'string', 'minLength': 1, 'maxLength': 100},
        'model': {'type': 'string', 'minLength': 1},
        'rate_hz': number(0.0, 10000.0),
        'ratio': number(0.0, 1000.0, lo_open=True),
        'slo_ms': number(0.0, 60000.0, lo_open=True),
        'slo_scale': slo_scale,
        'processors': {'type': 'array', 'items': {'type': 'string', 'minLength': 1},
                       'uniqueItems': True, 'maxItems': 64},
        'weight': number(0.0, MAX_WEIGHT, lo_open=True),
        'min_attainment': number(0.0, 1.0),
    }, ('model',))
    scenario = strict({
        'name': {'type': 'string', 'minLength': 1, 'maxLength': 100},
        'platform': {'type': 'string', 'minLength': 1},
        'load': load,
        'slo_scale': slo_scale,
        'description': {'type': 'string', 'maxLength': 10000},
        'applications': {'type': 'array', 'items': app, 'minItems': 1, 'maxItems': 64},
        'faults': {'type': 'array', 'items': {'type': 'string', 'minLength': 1},
                   'maxItems': 64},
    }, ('name', 'applications'))
    return strict({
        'format': {'enum': [SCENARIOS_FORMAT]},
        'platform': {'type': 'string', 'minLength': 1},
        'description': {'type': 'string', 'maxLength': 10000},
        'defaults': strict({'slo_scale': slo_scale, 'load': load}),
        'scenarios': {'type': 'array', 'items': scenario, 'minItems': 1, 'maxItems': 10000},
    }, ('scenarios',))


#: JSON Schema of a scenario file (see :func:`hetero_infer.io.schema.validate`).
SCENARIOS_SCHEMA = _scenarios_schema()


def parse_scenarios(doc, *, where: str = '<scenarios>') -> List[Scenario]:
    """Validate a scenarios document (already parsed YAML) into :class:`Scenario` objects.

    Structure, types and ranges are :data:`SCENARIOS_SCHEMA`'s; this function adds the checks
    across keys. Names are identities: two scenarios, or two applications of a scenario, with
    the same name are refused (an application's name defaults to its model's).

    :raises ConfigError: with the file, scenario and key named.
    """
    from hetero_infer.io.schema import validate
    validate(doc, SCENARIOS_SCHEMA, where)
    defaults = doc.get('defaults') or {}
    default_platform = doc.get('platform')
    default_scale = float(defaults.get('slo_scale', DEFAULT_SLO_SCALE))
    default_load = float(defaults.get('load', DEFAULT_LOAD))
    out: List[Scenario] = []
    seen = set()
    for k, item in enumerate(doc['scenarios']):
        name = item['name']
        w = '%s: scenarios[%d] (%s)' % (where, k, name)
        if name in seen:
            raise ConfigError('%s: duplicate scenario name %r' % (w, name))
        seen.add(name)
        scale = float(item.get('slo_scale', default_scale))
        specs: List[AppSpec] = []
        names: Dict[str, int] = {}
        for j, a in enumerate(item['applications']):
            model = a['model']
            app_name = a.get('name') or os.path.splitext(os.path.basename(model))[0]
            aw = '%s, applications[%d] (%s)' % (w, j, app_name)
            if app_name in names:
                raise ConfigError(
                    '%s: duplicate application name %r (also applications[%d]); names identify '
                    'applications in plans and results: give each its own "name"'
                    % (aw, app_name, names[app_name]))
            names[app_name] = j
            has_rate, has_ratio = 'rate_hz' in a, 'ratio' in a
            if has_rate == has_ratio:
                raise ConfigError('%s: give exactly one of rate_hz or ratio' % aw)
            if 'slo_ms' in a and 'slo_scale' in a:
                raise ConfigError('%s: give slo_ms or slo_scale, not both' % aw)
            specs.append(AppSpec(
                name=app_name, model=model,
                rate_hz=float(a['rate_hz']) if has_rate else None,
                ratio=float(a['ratio']) if has_ratio else None,
                slo_ms=float(a['slo_ms']) if 'slo_ms' in a else None,
                slo_scale=float(a.get('slo_scale', scale)),
                processors=tuple(a.get('processors') or ()),
                weight=float(a.get('weight', 1.0)),
                min_attainment=float(a.get('min_attainment', 0.0))))
        if len({s.ratio is None for s in specs}) != 1:
            raise ConfigError('%s: mix of rate_hz and ratio; use one kind for all applications'
                              % w)
        if specs[0].ratio is None and not any(s.rate_hz > 0 for s in specs):
            raise ConfigError('%s: every rate_hz is 0; at least one application must send '
                              'requests' % w)
        from hetero_infer.twin.faults import parse_faults
        try:
            parsed = parse_faults([str(f) for f in item.get('faults') or []])
        except ConfigError as exc:
            raise ConfigError('%s: %s' % (w, exc)) from None
        out.append(Scenario(name=name, platform=item.get('platform', default_platform),
                            load=float(item.get('load', default_load)), applications=specs,
                            description=item.get('description', ''), faults=parsed))
    return out


def load_scenarios(path: Optional[str] = None) -> List[Scenario]:
    """Read and validate a scenarios YAML file (default: ``config/scenarios.yaml``).

    :raises ConfigError: missing file, bad YAML, or invalid content.
    """
    from hetero_infer.io.yaml_file import read_yaml

    path = path or default_scenarios_path()
    return parse_scenarios(read_yaml(path, 'scenarios'), where=path)


def choose_platform(flag: Optional[str], scenarios: Sequence[Scenario],
                    default: str = 'xavier') -> Tuple[str, Optional[str]]:
    """The platform to run ``scenarios`` on, and a warning when ``--platform`` overrides theirs.

    A scenario's ``platform:`` is honoured; ``flag`` (``--platform``) overrides it with a
    warning; without either, ``default``.

    :raises ConfigError: no ``--platform`` and the scenarios name different platforms.
    """
    named = sorted({s.platform for s in scenarios if s.platform})
    if flag:
        other = [p for p in named if p != flag]
        if other:
            return flag, ('--platform %s overrides the scenario file\'s platform %s'
                          % (flag, ', '.join(other)))
        return flag, None
    if len(named) > 1:
        raise ConfigError('the scenarios run on different platforms (%s); choose one with '
                          '--platform or run them separately' % ', '.join(named))
    return (named[0] if named else default), None


def with_criticality(scenarios: Sequence[Scenario], *, weights=None, floors=None
                     ) -> List[Scenario]:
    """``scenarios`` with the weights and floors given by application name replaced wherever
    an application of that name appears (``--weight`` / ``--floor`` of ``evaluate``).

    :raises ConfigError: a name that is an application of none of them, or a bad value.
    """
    import dataclasses

    from hetero_infer.workload.requests import check_criticality
    weights, floors = dict(weights or {}), dict(floors or {})
    names = {a.name for s in scenarios for a in s.applications}
    for label, given in (('--weight', weights), ('--floor', floors)):
        unknown = sorted(set(given) - names)
        if unknown:
            raise ConfigError('%s: unknown application(s) %s (applications: %s)'
                              % (label, ', '.join(unknown), ', '.join(sorted(names))))
    out = []
    for s in scenarios:
        specs = []
        for a in s.applications:
            a = dataclasses.replace(a, weight=float(weights.get(a.name, a.weight)),
                                    min_attainment=float(floors.get(a.name, a.min_attainment)))
            check_criticality(a.name, a.weight, a.min_attainment)
            specs.append(a)
        out.append(dataclasses.replace(s, applications=specs))
    return out


def find_scenario(scenarios: Sequence[Scenario], name: str) -> Scenario:
    for s in scenarios:
        if s.name == name:
            return s
    raise ConfigError('unknown scenario %r (known: %s)'
                      % (name, ', '.join(s.name for s in scenarios)))
