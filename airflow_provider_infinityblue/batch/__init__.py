"""The parts of a whole-dataset generation that are not Airflow's: input rows, the manifest, pacing, the ledger.

:class:`~airflow_provider_infinityblue.operators.batch.InfinityBlueGenerateVideoBatchOperator` and
:class:`~airflow_provider_infinityblue.triggers.batch.InfinityBlueBatchTrigger` are built from them:

- :mod:`.rows`: reading ``requests`` or a JSONL/CSV ``requests_path`` row by row, and validating every row;
- :mod:`.manifest`: the JSONL manifest, one entry per input row, written atomically;
- :mod:`.ledger`: what each row's submission left in the task state store, so a retry never pays twice;
- :mod:`.pacing`: the rate limits of POSTs (worker) and GETs (trigger).
"""
