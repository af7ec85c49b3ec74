package processor

import "fmt"

// Healthy is nil while the processor works, and says why once it has failed
// (DuckDB unwritable, Kafka lost for good, ...): the monitoring endpoint's
// /healthz answers 503 with this text.
func (p *Processor) Healthy() error {
	if err := p.failure(); err != nil {
		return fmt.Errorf("processor failed: %w", err)
	}
	return nil
}

// Close releases a processor that New opened but Run never ran (for
// example when the caller's own start-up failed after New): it closes the
// DuckDB file with a checkpoint. Run closes it by itself; do not call both.
func (p *Processor) Close() error { return p.closeDB() }
