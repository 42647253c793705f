"""Small-model containers implementing the SageMaker container contract."""
