"""One round: its context, the snapshot it decides on, its metered steps and the two kinds of round.

``context`` (what every step of a run shares), ``snapshot`` (labels and item states, once per round), ``runners``
(which function runs an arm's round), ``annotate`` and ``distill`` (the two kinds), ``steps`` (a metered compute
step and the student's training), ``results`` (what each kind of step produced), ``compute_steps`` (a round's
compute steps in the ledger) and ``step_store`` (the hook a study plugs its store of finished steps into).
"""
