"""What a run learned, for people and for other tools: an offline HTML report of one or more
runs (:func:`write_report`) and exports of its tables as CSV, JSON or Parquet
(:func:`export_run`); :func:`live_report` keeps a learn run's page up to date as it goes."""

from alma.report.export import FORMATS, TABLES, export_run
from alma.report.html import LIVE_REPORT, live_report, write_report

__all__ = ["FORMATS", "LIVE_REPORT", "TABLES", "export_run", "live_report", "write_report"]
