"""The read-only tables of the model manager (models, taught heads): one row per library entry, one selected.

Shared by ``model_manager`` and ``head_manager`` so both tables look and select alike.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from qgis.PyQt.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem, QWidget

from ..qgis_io.model_library import ModelEntry


def entry_table(columns: Sequence[str], on_select: Callable[[], None], parent: QWidget) -> QTableWidget:
    """A table with ``columns`` whose rows are selected whole, one at a time, and never edited."""
    table = QTableWidget(0, len(columns), parent)
    table.setHorizontalHeaderLabels(list(columns))
    table.setSelectionBehavior(QAbstractItemView.SelectRows)
    table.setSelectionMode(QAbstractItemView.SingleSelection)
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.verticalHeader().hide()
    table.itemSelectionChanged.connect(on_select)
    return table


def fill(table: QTableWidget, rows: list[list[str]], tips: Callable[[int, int, str], str]) -> None:
    """Show ``rows`` (texts per column); ``tips(row, col, text)`` gives each cell's tooltip."""
    table.setRowCount(len(rows))
    for row, texts in enumerate(rows):
        for col, text in enumerate(texts):
            item = QTableWidgetItem(text)
            item.setToolTip(tips(row, col, text))
            table.setItem(row, col, item)
    table.resizeColumnsToContents()


def selected_entry(table: QTableWidget, entries: list[ModelEntry]) -> ModelEntry | None:
    rows = table.selectionModel().selectedRows()
    return entries[rows[0].row()] if rows else None


def select_entry(table: QTableWidget, entries: list[ModelEntry], path: str | Path) -> None:
    """Select the row of ``path`` (for a caller that just added it)."""
    for row, entry in enumerate(entries):
        if Path(entry.path).resolve() == Path(path).resolve():
            table.selectRow(row)


def table_width(table: QTableWidget) -> int:
    """The dialog width that shows every column of ``table`` (its frame and the dialog's margins included)."""
    return sum(table.columnWidth(c) for c in range(table.columnCount())) + 2 * table.frameWidth() + 24
