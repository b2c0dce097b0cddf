"""Learning core: query strategies, training sets, training, MLflow tracking, stopping rules."""
