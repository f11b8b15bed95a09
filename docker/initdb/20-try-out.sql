-- docker-compose only: follow the anvil service, and relay to RabbitMQ and Kafka.
SELECT eventeum.add_node('default', 'ws://anvil:8545', '{"blockStrategy": "PUBSUB", "numBlocksToWait": 1}');
SELECT eventeum.add_broadcaster('rabbit', 'rabbitmq', '{"url": "amqp://guest:guest@rabbitmq:5672/%2f", "exchange": "ThisIsAExchange"}');
SELECT eventeum.add_broadcaster('kafka', 'kafka', '{"bootstrapServers": "kafka:9092"}');
