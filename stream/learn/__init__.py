"""`leadstream learn`: a candidate model fitted to sales outcomes in history, with its evidence.

features.py  what the engine knew about each lead at the moment the model decided about it
fit.py       a regularised logistic regression of the outcome on those features (scikit-learn)
candidate.py the fitted weights as a model file in today's schema, rounded, versioned
evaluate.py  time-split evaluation: AUC, precision and recall at the MQL volume, calibration
report.py    the HTML and JSON report
command.py   the command: read, check, learn, evaluate, write
"""
