"""Stage 5: from outcomes to verdicts: results documents, the gate, findings, exploration, comparison."""
