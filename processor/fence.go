package processor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
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
			members, foreign, state, err := otherInstances(admin, p.cfg.Group, p.instanceTag)
			if err != nil || len(members) < 2 {
				continue // a failed describe is retried; goka reports a broker that is gone
			}
			// A broker error makes runGoka start a new goka processor whose
			// member joins while the old one is still listed: two members,
			// one instance (faults.TestBrokerRestart stopped here). Each
			// member's join metadata carries its instance's tag, but Kafka
			// (and kfake) describe it only in a Stable group; so once this
			// instance has restarted goka, decide only then, counting only
			// members tagged by another instance. Before any restart every
			// second member is another instance's, whatever the state (the
			// race's rebalance may never settle with both members in it).
			if p.gokaRestarts.Load() > 0 && (state != "Stable" || len(foreign) == 0) {
				continue
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

// instanceTagPrefix marks the join metadata of a gtsm processor instance.
const instanceTagPrefix = "gtsm-instance/"

// newInstanceTag is a random tag for one Processor (one `gtsm process`).
func newInstanceTag() []byte {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return []byte(instanceTagPrefix + hex.EncodeToString(b[:]))
}

// otherInstances describes a group: every member (as groupMembers prints
// them), the members not tagged with tag — another instance's, or a client
// that is not a gtsm processor, or one whose metadata the broker did not
// describe — and the group state.
func otherInstances(admin sarama.ClusterAdmin, group string, tag []byte) (all, foreign []string, state string, err error) {
	ds, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil {
		return nil, nil, "", fmt.Errorf("describe consumer group %s: %w", group, err)
	}
	for _, d := range ds {
		if d.GroupId != group {
			continue
		}
		if d.Err != sarama.ErrNoError && d.Err != sarama.ErrGroupIDNotFound {
			return nil, nil, "", fmt.Errorf("describe consumer group %s: %w", group, d.Err)
		}
		state = d.State
		for id, m := range d.Members {
			name := fmt.Sprintf("%s@%s (%s)", m.ClientId, strings.TrimPrefix(m.ClientHost, "/"), id)
			all = append(all, name)
			// The join metadata is the tag, then (agree.go) the member's
			// configuration, which changes once it consumes.
			if meta, err := m.GetMemberMetadata(); err != nil || meta == nil || tagOf(meta.UserData) != string(tag) {
				foreign = append(foreign, name)
			}
		}
	}
	sort.Strings(all)
	sort.Strings(foreign)
	return all, foreign, state, nil
}

// tagOf is the instance tag of a member's join metadata (its first line).
func tagOf(userData []byte) string {
	t, _ := splitUserData(userData)
	return t
}
