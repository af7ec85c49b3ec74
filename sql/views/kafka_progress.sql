-- Progress of the processor per Kafka partition: next_offset is the first
-- message NOT yet in this file.
CREATE OR REPLACE VIEW kafka_progress AS
SELECT topic, kafka_partition, next_offset
FROM kafka_offsets
ORDER BY topic, kafka_partition;
