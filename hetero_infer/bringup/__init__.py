"""Bring-up on a user's own board: from a fresh device to a fitted twin, a trained interference
model, a plan and a measured serving run (``hetero-infer bringup``).

Steps (each one artifact under the bring-up directory, skipped on a re-run when it is there):

======================  ===========================  =========================================
step                    artifact                     what
======================  ===========================  =========================================
environment             environment.json             processors, library versions
engines                 engines.json                 each model loaded on each processor
isolated                isolated.json                isolated latency, repeats and CV
fit                     platform.yaml + fit.json     efficiencies / per-layer costs fitted
coruns                  coruns.json                  pairs (and triples) on the board and in
                                                     the fitted twin
profile                 profile/                     random-layer profile with test-retest
train                   model/                       interference model, chosen by CV
plan                    plan.json                    plan for equal rates at ``load`` x capacity
serve                   serve.json                   served run vs the plan's prediction
======================  ===========================  =========================================

``report.json``, ``report.md`` and ``twin_vs_board.png`` summarise them after every run.

Modules: :mod:`.runner` (the step list, skipping, the progress bar), :mod:`.steps` (each
step), :mod:`.artifacts` (atomic writes, the recorded settings), :mod:`.report`,
:mod:`.device_check` (the TensorRT check of ``tools/device_check.py``).
"""
