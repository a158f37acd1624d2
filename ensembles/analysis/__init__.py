"""Analysis of ensemble results: statistics over members, intervals, tables and plots."""
