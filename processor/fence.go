package processor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// fencePoll is how often watchSoleInstance describes the group, and
// fenceHold how long an instance that saw a second member stays before it
// stops, so the other, polling too, sees the pair as well.
const (
	fencePoll = 200 * time.Millisecond
	fenceHold = 3 * time.Second
)

// watchSoleInstance closes the window checkSoleInstance leaves open. Two
// `gtsm process` with different DuckDB files started at the same instant
// both describe the group while it is still empty, both pass, and both
// join: each file would silently hold only the partitions its instance was
// given (with the same file, DuckDB's lock refuses the second process
// before it reaches Kafka). The check cannot tell which of two instances
// came first, so for a while after passing it (until the joins and the
// first rebalance are done) each instance watches the group, and a second
// member makes it fail with ErrGroupInUse, fenceHold after it saw the pair,
// so that the other, polling too, sees it as well. Both fail rather than
// split the topic: a restart starts cleanly or, if one had committed
// offsets already, is refused by checkGroupOffsets. (Left open: an instance
// that cannot describe the group during the other's whole fenceHold runs
// on.)
//
// It runs in the background for the window and stops early when ctx ends
// or the processor has failed.
func (p *Processor) watchSoleInstance(ctx context.Context) {
	window := 10*time.Second + 2*p.sarama.Consumer.Group.Session.Timeout
	go func() {
		admin, err := sarama.NewClusterAdmin(p.cfg.Brokers, p.sarama)
		if err != nil {
			p.log.Warn("cannot watch the consumer group for a second instance", "group", p.cfg.Group, "err", err)
			return
		}
		defer admin.Close()
		deadline := time.NewTimer(window)
		defer deadline.Stop()
		tick := time.NewTicker(fencePoll)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.failed:
				return
			case <-deadline.C:
				return
			case <-tick.C:
			}
			members, state, err := groupMembers(admin, p.cfg.Group)
			if err != nil || len(members) < 2 {
				continue // a failed describe is retried; goka reports a broker that is gone
			}
			// Stay in the group a moment so the other instance, polling
			// too, sees both members: were this one to leave at once, the
			// other could miss the pair and run on alone, from offsets this
			// one may have committed for records its own file does not hold.
			p.log.Warn("a second member joined the consumer group right after this instance started; stopping",
				"group", p.cfg.Group, "members", strings.Join(members, ", "), "in", fenceHold)
			select {
			case <-ctx.Done():
				return
			case <-time.After(fenceHold):
			}
			p.fail(fmt.Errorf("%w: group %s (state %s) has %d members right after this instance started: %s; "+
				"another gtsm process started in this group at the same moment (each would store only part of the topic in its own DuckDB file, here %s): "+
				"both stop; start one, or give each its own --group",
				ErrGroupInUse, p.cfg.Group, state, len(members), strings.Join(members, ", "), p.cfg.DBPath))
			return
		}
	}()
}
