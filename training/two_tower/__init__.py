"""Two-tower recommender: towers (model.py), training data (data.py), the training loop
(train.py), candidate re-ranking (rerank.py) and the end-to-end job (job.py)."""
