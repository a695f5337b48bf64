"""Run history: a summary of every finished run the board tracked, kept in the database.

``summaries`` writes and purges them; ``search`` reads them under the history
page's filters; ``export`` streams them as CSV or JSON.
"""
