"""Everything a settlement writes: the tables (CSV, one XLSX workbook) in `exports`, the PNG charts
in `charts`, written together and all-or-nothing by `exports.write_outputs`."""
