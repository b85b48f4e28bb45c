"""Evaluation (paper Sec. 4): the comparison protocol, tables and figures."""
