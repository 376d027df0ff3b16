"""Running many trainings: subset plans, executors (serial, process pool, Ray), result store."""

from attribution.execution.driver import RetrainSummary, block_partition, run_plan
from attribution.execution.executors import Executor, ProcessExecutor, SerialExecutor, make_executor
from attribution.execution.plan import BernoulliPlan, SubsetPlan, retrain_plan
from attribution.execution.store import ResultStore

__all__ = [
    "BernoulliPlan",
    "Executor",
    "ProcessExecutor",
    "ResultStore",
    "RetrainSummary",
    "SerialExecutor",
    "SubsetPlan",
    "block_partition",
    "make_executor",
    "retrain_plan",
    "run_plan",
]
