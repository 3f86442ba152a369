"""What stages draw and write for people: charts, the statistics view, markdown helpers."""
