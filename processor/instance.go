package processor

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// ErrGroupInUse is what checkSoleInstance returns (wrapped) when another
// member is consuming the group.
var ErrGroupInUse = fmt.Errorf("consumer group in use by another instance")

// checkSoleInstance refuses to start while the consumer group has another
// live member. Two `gtsm process` in one group, each with its own DuckDB
// file, would split the topic's partitions between the files without an
// error (and the second file may start where the first's commits are).
// It is the one place the single-instance rule is enforced: a deliberate
// multi-instance mode (issue #14) sets Config.MultiInstance to skip it.
//
// A member that is still listed may be an instance that was SIGKILLed a
// moment ago: the coordinator drops it once its session times out. So the
// check waits up to one session timeout (ours; instances of one group run
// with the same settings) plus a margin for the members to go, and refuses
// only if one is still there; a live instance heartbeats and stays. The
// cost is that delay before a restart after a crash (goka's join would wait
// for the dead member anyway) and before a refusal.
//
// Two instances started within the same instant can both see an empty
// group; watchSoleInstance (fence.go) then stops both.
func (p *Processor) checkSoleInstance(ctx context.Context) error {
	if p.cfg.MultiInstance {
		return nil
	}
	admin, err := sarama.NewClusterAdmin(p.cfg.Brokers, p.sarama)
	if err != nil {
		return fmt.Errorf("kafka %s: %w", strings.Join(p.cfg.Brokers, ","), err)
	}
	defer admin.Close()
	wait := p.sarama.Consumer.Group.Session.Timeout + 2*time.Second
	deadline := time.Now().Add(wait)
	logged := false
	for {
		members, state, err := groupMembers(admin, p.cfg.Group)
		if err != nil {
			return err
		}
		if len(members) == 0 {
			p.watchSoleInstance(ctx) // fence.go: two instances passing here at once
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: group %s (state %s) has %d live member(s) still there after %v: %s; "+
				"another gtsm process is consuming this group (each instance would store only part of the topic in its own DuckDB file, here %s): "+
				"stop it, or give this one its own --group (it then reads the whole topic)",
				ErrGroupInUse, p.cfg.Group, state, len(members), wait.Round(time.Millisecond), strings.Join(members, ", "), p.cfg.DBPath)
		}
		if !logged {
			p.log.Warn("consumer group has members; waiting for them to expire (an instance that just died) before refusing to start",
				"group", p.cfg.Group, "members", strings.Join(members, ", "), "state", state, "up_to", wait)
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// groupMembers lists a group's members as "client-id@host (member id)".
func groupMembers(admin sarama.ClusterAdmin, group string) ([]string, string, error) {
	ds, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil {
		return nil, "", fmt.Errorf("describe consumer group %s: %w", group, err)
	}
	var out []string
	state := ""
	for _, d := range ds {
		if d.GroupId != group {
			continue
		}
		if d.Err != sarama.ErrNoError && d.Err != sarama.ErrGroupIDNotFound {
			return nil, "", fmt.Errorf("describe consumer group %s: %w", group, d.Err)
		}
		state = d.State
		for id, m := range d.Members {
			out = append(out, fmt.Sprintf("%s@%s (%s)", m.ClientId, strings.TrimPrefix(m.ClientHost, "/"), id))
		}
	}
	sort.Strings(out)
	return out, state, nil
}
