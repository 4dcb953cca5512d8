"""The evaluation suite: benchmarks, classifiers, generation, metrics, results (`advgame eval`)."""
