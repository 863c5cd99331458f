"""Dead letters: how a refused record is written (`record`) and how it is listed and sent back
after a fix (`redrive`, behind `leadstream deadletters`)."""
