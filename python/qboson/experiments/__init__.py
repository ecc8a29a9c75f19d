"""The paper's experiments: QM9 (Table II), synthetic quantum data (Table I), 2-D mixture (Fig. 1)."""
