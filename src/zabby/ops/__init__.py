"""What operators see: the four-letter words (``ops.fourletter``), and later the
AdminServer, Prometheus metrics and the web console.

Everything here reads the server's one monitoring model, ``server.metrics``
(``zabby.server.metrics.ServerMetrics``), and the server's state; ``server`` never
imports this package: whoever builds a server hands it
``ops.fourletter.handle_four_letter_word`` (``zabby serve`` does).
"""
