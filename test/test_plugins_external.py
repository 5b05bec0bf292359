"""A plug-in of every family defined outside the package, installed as entry points of a test
distribution, works without any edit to the package: a scheduler from ``hetero-infer plan`` and
``hetero-infer evaluate``, a goal and a backend from the serving parameters (Service and node),
a predictor and a regressor by name."""

import json
import os
import sys
import textwrap
import time

import numpy as np
import pytest

from hetero_infer.cli import main
from hetero_infer.errors import ConfigError

BUILT_IN_EVALUATED = ['interference_aware', 'talk_exact', 'no_interference', 'base',
                      'round_robin', 'least_finish_time', 'fastest_only', 'oracle']

MODULE = '''
    import numpy as np
    from sklearn.base import BaseEstimator, RegressorMixin

    from hetero_infer.backends.null import NullBackend
    from hetero_infer.interference.predictors import Predictor
    from hetero_infer.planning.goals import metric_value
    from hetero_infer.planning.policy import Policy
    from hetero_infer.planning.schedulers import Plan, Scheduler
    from hetero_infer.planning.schedulers.searched import (
        BASELINE_ROUTER,
        SearchScheduler,
        router_factory,
    )

    CALLS = {'predictor': 0, 'goal': 0}
    BACKENDS = []


    class CountingIsolated(Predictor):
        """Isolated latencies, counted."""

        name = 'ext_isolated'

        def __init__(self, platform):
            self.platform = platform

        def latency_ms(self, model, proc, corunners):
            CALLS['predictor'] += 1
            return self.platform.isolated_latency_ms(model, proc)


    class ExtSearch(SearchScheduler):
        name = 'ext_search'
        description = 'the search, scored with ext_isolated'
        predictor_kind = 'ext_isolated'


    class SlowestOnly(Scheduler):
        """Every model on its slowest processor (a plan no built-in scheduler makes)."""

        name = 'ext_slowest'
        evaluated = True

        def _plan(self, ctx):
            mask = ctx.mask()
            iso = np.where(mask, ctx.isolated_ms(), -1.0)
            alloc = np.zeros(iso.shape)
            alloc[np.arange(iso.shape[0]), np.argmax(iso, axis=1)] = 1.0
            policy = Policy(ctx.app_names, ctx.platform.processor_ids, alloc, mask=mask,
                            router=BASELINE_ROUTER)
            return Plan(self.name, router_factory(policy, ctx.settings), policy=policy)


    def goodput_counted(metrics):
        """Goodput, counted."""
        CALLS['goal'] += 1
        return metric_value(metrics, 'goodput')


    class CountedNullBackend(NullBackend):
        name = 'ext_null'

        @classmethod
        def create(cls, **kwargs):
            backend = super().create(**kwargs)
            BACKENDS.append(backend)
            return backend


    class MedianSlowdown(BaseEstimator, RegressorMixin):
        """Predicts the training median slowdown, scaled."""

        kind = 'ext_median'
        title = 'median slowdown'
        candidate = False

        def __init__(self, scale=1.0):
            self.scale = scale

        @classmethod
        def search_space(cls):
            return {'scale': [0.9, 1.0, 1.1]}

        def fit(self, X, y):
            self.median_ = float(np.median(y))
            self.n_features_in_ = int(np.asarray(X).shape[1])
            return self

        def predict(self, X):
            return np.full(len(X), self.scale * self.median_)

        def to_arrays(self):
            return {'kind': self.kind, 'params': self.get_params(), 'median': self.median_,
                    'n_features_in': self.n_features_in_}

        @classmethod
        def from_arrays(cls, d, *, where):
            model = cls(**d['params'])
            model.median_ = float(d['median'])
            model.n_features_in_ = int(d['n_features_in'])
            return model
'''

ENTRY_POINTS = '''
    [hetero_infer.schedulers]
    ext_search = hi_ext_plugins:ExtSearch
    ext_slowest = hi_ext_plugins:SlowestOnly

    [hetero_infer.predictors]
    ext_isolated = hi_ext_plugins:CountingIsolated

    [hetero_infer.goals]
    ext_goal = hi_ext_plugins:goodput_counted

    [hetero_infer.backends]
    ext_null = hi_ext_plugins:CountedNullBackend

    [hetero_infer.regressors]
    ext_median = hi_ext_plugins:MedianSlowdown
'''

APPS = {'plan_samples': 3, 'plan_duration_s': 0.2, 'applications': ['cam'],
        'apps.cam.input_topic': 'cam', 'apps.cam.model': 'resnet18'}


@pytest.fixture(scope='module')
def plugins(tmp_path_factory):
    """The test distribution on sys.path and PYTHONPATH (its module: hi_ext_plugins)."""
    root = tmp_path_factory.mktemp('site')
    (root / 'hi_ext_plugins.py').write_text(textwrap.dedent(MODULE))
    info = root / 'hi_ext_plugins-0.1.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: hi-ext-plugins\nVersion: 0.1\n')
    (info / 'entry_points.txt').write_text(textwrap.dedent(ENTRY_POINTS))
    old_path, old_env = list(sys.path), os.environ.get('PYTHONPATH')
    sys.path.insert(0, str(root))
    os.environ['PYTHONPATH'] = os.pathsep.join(p for p in (str(root), old_env) if p)
    yield root
    sys.path[:] = old_path
    if old_env is None:
        os.environ.pop('PYTHONPATH', None)
    else:
        os.environ['PYTHONPATH'] = old_env
    _forget()


def _forget():
    """Unregister what the distribution added (the registries outlive this module)."""
    from hetero_infer.backends import BACKENDS
    from hetero_infer.interference.predictors import PREDICTORS
    from hetero_infer.interference.regressor_registry import REGRESSORS
    from hetero_infer.planning.goals import GOALS
    from hetero_infer.planning.schedulers import SCHEDULERS
    for reg, names in ((SCHEDULERS, ('ext_search', 'ext_slowest')),
                       (PREDICTORS, ('ext_isolated',)), (GOALS, ('ext_goal',)),
                       (BACKENDS, ('ext_null',)), (REGRESSORS, ('ext_median',))):
        for n in names:
            if n in reg:
                reg.unregister(n)
    sys.modules.pop('hi_ext_plugins', None)


def test_plan_command_runs_an_installed_scheduler_with_an_installed_predictor(plugins, tmp_path,
                                                                              capsys):
    out = tmp_path / 'plan.json'
    assert main(['plan', '--scenario', 'mix_r1', '--scheduler', 'ext_search',
                 '--top-fraction', '0.5', '--confidence', '0.5', '--workers', '1',
                 '--out', str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc['scheduler'] == 'ext_search' and doc['search']['predictor'] == 'ext_isolated'
    import hi_ext_plugins
    assert hi_ext_plugins.CALLS['predictor'] > 0  # the search asked the installed predictor
    assert 'scheduler ext_search' in capsys.readouterr().out
    # facts the plug-in declares decide what the command accepts: this one does not search
    assert main(['plan', '--scenario', 'mix_r1', '--scheduler', 'ext_slowest']) == 1
    err = capsys.readouterr().err
    assert "'ext_slowest' does not search" in err and 'ext_search' in err


def test_evaluate_runs_an_installed_scheduler_in_registry_order(plugins, tmp_path):
    from hetero_infer.planning.schedulers import evaluated_schedulers
    # an installed scheduler that declares evaluated = True joins the default run, last
    assert evaluated_schedulers() == BUILT_IN_EVALUATED + ['ext_slowest']
    out = tmp_path / 'eval'
    assert main(['evaluate', '--only', 'mix_r1', '--schedulers', 'ext_slowest,base',
                 '--replications', '1', '--no-slo99', '--duration-s', '0.5',
                 '--confirm-traces', '0', '--workers', '1', '--out', str(out)]) == 0
    summary = json.loads((out / 'summary.json').read_text())
    results = summary['scenarios'][0]['results']
    assert list(results) == ['ext_slowest', 'base']
    assert results['ext_slowest']['goodput'] < results['base']['goodput']


def test_service_serves_with_an_installed_backend_and_plans_for_an_installed_goal(plugins):
    from hetero_infer.serving import config
    from hetero_infer.serving.service import Service
    assert 'ext_null' in config.spec_for('backend').full_description()
    assert config.validate('backend', 'ext_null', live=False) is None
    assert config.validate('goal', 'ext_goal') is None
    cfg = config.build_config(dict(APPS, backend='ext_null', goal='ext_goal'))
    import hi_ext_plugins
    made = len(hi_ext_plugins.BACKENDS)
    svc = Service(cfg, publish=lambda app, doc: None, plan_in_process=True)
    svc.start()
    try:
        assert len(hi_ext_plugins.BACKENDS) == made + 1
        assert svc.backend is hi_ext_plugins.BACKENDS[-1]
        end = time.monotonic() + 30.0
        while time.monotonic() < end and svc.last_plan.get('goal') != 'ext_goal':
            time.sleep(0.05)
        assert svc.last_plan.get('goal') == 'ext_goal'
        assert hi_ext_plugins.CALLS['goal'] > 0
    finally:
        svc.close()


def test_node_takes_the_installed_backend_parameter(plugins):
    rclpy = pytest.importorskip('rclpy')
    import hi_ext_plugins
    from rclpy.context import Context

    from hetero_infer.ros.scheduler_node import SchedulerNode
    made = len(hi_ext_plugins.BACKENDS)
    ctx = Context()
    rclpy.init(context=ctx)
    node = None
    try:
        node = SchedulerNode(context=ctx, plan_in_process=True,
                             overrides=dict(APPS, backend='ext_null'))
        assert 'ext_null' in node.describe_parameter('backend').description
        assert node.get_parameter('backend').value == 'ext_null'
        assert len(hi_ext_plugins.BACKENDS) == made + 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.shutdown(context=ctx)


def test_predictor_and_regressor_are_reachable_by_name(plugins):
    import hi_ext_plugins

    from hetero_infer.interference.predictors import get_predictor, known_predictors
    from hetero_infer.interference.regressor_registry import candidate_kinds
    from hetero_infer.interference.regressor_selection import make_model, select, title
    from hetero_infer.interference.slowdown_model import model_from_arrays
    from hetero_infer.platform.spec import Platform
    assert 'ext_isolated' in known_predictors()
    assert get_predictor('ext_isolated') is hi_ext_plugins.CountingIsolated
    pred = get_predictor('ext_isolated')(Platform.load('xavier'))
    from hetero_infer.models.zoo import load_model
    r18 = load_model('resnet18')
    assert pred.latency_ms(r18, 'gpu', {}) == Platform.load('xavier').isolated_latency_ms(
        r18, 'gpu')

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 5)), np.exp(rng.normal(scale=0.1, size=40))
    model = make_model('ext_median', {'scale': 1.1}).fit(X, y)
    # the model file's reader finds the installed kind and reads it back
    back = model_from_arrays(json.loads(json.dumps(model.to_arrays())), where='f')
    assert np.array_equal(back.predict(X), model.predict(X))
    assert title('ext_median') == 'median slowdown'
    assert 'ext_median' not in candidate_kinds()  # candidate = False: tried only when named
    tr, te = np.arange(30), np.arange(30, 40)
    res = select(X, y, np.ones(40), tr, te, candidates=['ext_median', 'knn'], n_iter=1, cv=2)
    assert set(res['kinds']) == {'ext_median', 'knn'}
    with pytest.raises(ConfigError, match="unknown regressor 'ext_mean'.*ext_median"):
        make_model('ext_mean')
