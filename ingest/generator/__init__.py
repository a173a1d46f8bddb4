"""Realistic, reproducible sales-manager traffic: PBX CDRs, chat sessions and CRM events.

The same seed gives byte-identical records, and ``Traffic.expected`` holds the totals a correct
pipeline must compute from them.
"""

from ingest.generator.activity import simulate, simulate_truth
from ingest.generator.output import (
    SendReport,
    frame_messages,
    run_live,
    send_to_kafka,
    write_files,
)
from ingest.generator.population import (
    Department,
    Manager,
    Population,
    directory_yaml,
    make_population,
    write_directory_yaml,
)
from ingest.generator.render import (
    CDR_FORMAT,
    CHAT_FORMAT,
    CRM_FORMAT,
    RawRecord,
    Traffic,
)
from ingest.generator.truth import COUNTERS, Expected

__all__ = [
    "CDR_FORMAT",
    "CHAT_FORMAT",
    "COUNTERS",
    "CRM_FORMAT",
    "Department",
    "Expected",
    "Manager",
    "Population",
    "RawRecord",
    "SendReport",
    "Traffic",
    "directory_yaml",
    "frame_messages",
    "make_population",
    "run_live",
    "send_to_kafka",
    "simulate",
    "simulate_truth",
    "write_directory_yaml",
    "write_files",
]
