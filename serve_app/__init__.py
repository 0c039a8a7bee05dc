"""The service: Ray Serve deployments, the FastAPI ingress, the job service and the RabbitMQ bridge."""
