package processor

// Agreement of a group's members on their configuration, before any of
// them consumes. Each member says in its join metadata (after its instance
// tag, fence.go) what must be the same for every member of a group: the
// topic, its partition count as the member saw it, the metadata topic and
// whether Level-2 runs, and in StateDir mode the state directory (by the
// identity file in it, so one shared directory mounted at two paths
// agrees, and two directories at the same path on two hosts do not). The
// group leader's balance strategy compares them at every rebalance: the
// members that agree with the group's reference member (the one consuming
// longest, else the one started first) are given the partitions; every
// other one is given none and a verdict naming the flag that differs, on
// which it stops with ErrConfigMismatch. Two members started at the same
// moment with different --state-dir: one stops at once instead of both
// running until a failover hands a partition to a directory that never had
// it ("the state directory does not belong to this group").

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// ErrConfigMismatch is wrapped by the error of a member refused because its
// configuration differs from the group's.
var ErrConfigMismatch = errors.New("configuration differs from the consumer group's")

// verdictPrefix starts the assignment user data of a refused member.
const verdictPrefix = "gtsm-refused\n"

// stateDirIDFile names the state directory's identity file.
const stateDirIDFile = "state-dir.id"

// memberConfig is what a member says about itself, JSON after the tag line
// of its join metadata.
type memberConfig struct {
	Started       int64  `json:"started"`             // unix ns
	Consuming     int64  `json:"consuming,omitempty"` // unix ns of its first non-empty assignment; 0: none yet
	Topic         string `json:"topic"`
	Partitions    int    `json:"partitions"`
	MetadataTopic string `json:"metadata_topic,omitempty"`
	Level2        bool   `json:"level2"`
	StateDir      string `json:"state_dir,omitempty"` // as given (for messages)
	StateDirID    string `json:"state_dir_id,omitempty"`
	Host          string `json:"host,omitempty"`
}

// differs names the first setting of m that is not ref's, or "".
func (m *memberConfig) differs(ref *memberConfig) string {
	switch {
	case m.Topic != ref.Topic:
		return fmt.Sprintf("--topic: %q here, %q there", m.Topic, ref.Topic)
	case m.Partitions != ref.Partitions:
		return fmt.Sprintf("partition count of topic %s: %d here, %d there (seen at start; restart both)", m.Topic, m.Partitions, ref.Partitions)
	case m.StateDirID != ref.StateDirID:
		if m.StateDir == "" || ref.StateDir == "" {
			return fmt.Sprintf("--state-dir: %q here, %q there (with --db each instance needs its own --group)", m.StateDir, ref.StateDir)
		}
		return fmt.Sprintf("--state-dir: %s on %s here, %s on %s there: not one directory (identity %s vs %s; members share one directory, on shared storage)",
			m.StateDir, m.Host, ref.StateDir, ref.Host, m.StateDirID, ref.StateDirID)
	case m.Level2 != ref.Level2:
		return fmt.Sprintf("--level2: %v here, %v there", m.Level2, ref.Level2)
	case m.MetadataTopic != ref.MetadataTopic:
		return fmt.Sprintf("--metadata-topic: %q here, %q there", m.MetadataTopic, ref.MetadataTopic)
	}
	return ""
}

// agreeStrategy wraps the group's balance strategy (goka's copartitioning
// one), under its name, so members of an older gtsm still join the same
// protocol.
type agreeStrategy struct {
	sarama.BalanceStrategy
	tag    []byte
	group  string
	refuse func(error) // this member is refused
	log    func(msg string, args ...any)

	mu       sync.Mutex
	self     memberConfig
	verdicts map[string][]byte // leader: member id -> assignment user data
}

func newAgreeStrategy(inner sarama.BalanceStrategy, tag []byte, group string, self memberConfig, refuse func(error), log func(string, ...any)) *agreeStrategy {
	if inner == nil {
		inner = sarama.NewBalanceStrategyRange()
	}
	return &agreeStrategy{BalanceStrategy: inner, tag: tag, group: group, self: self, refuse: refuse, log: log}
}

// userData is the join metadata: the tag line, then the configuration.
func (s *agreeStrategy) userData() []byte {
	s.mu.Lock()
	j, _ := json.Marshal(s.self) // plain struct: cannot fail
	s.mu.Unlock()
	return append(append(bytes.Clone(s.tag), '\n'), j...)
}

// SubscriptionUserData is sarama's hook before each join.
func (s *agreeStrategy) SubscriptionUserData([]string) ([]byte, error) { return s.userData(), nil }

// splitUserData returns a member's tag and configuration (nil when it gave
// none: not a gtsm processor, or an older one).
func splitUserData(b []byte) (tag string, cfg *memberConfig) {
	t, rest, _ := bytes.Cut(b, []byte("\n"))
	if len(rest) == 0 {
		return string(t), nil
	}
	var c memberConfig
	if json.Unmarshal(rest, &c) != nil {
		return string(t), nil
	}
	return string(t), &c
}

// Plan is the leader's: the members that agree with the reference share the
// partitions; the others get none and a verdict.
func (s *agreeStrategy) Plan(members map[string]sarama.ConsumerGroupMemberMetadata, topics map[string][]int32) (sarama.BalanceStrategyPlan, error) {
	type member struct {
		id  string
		cfg *memberConfig
	}
	var ms []member
	for id, m := range members {
		_, c := splitUserData(m.UserData)
		ms = append(ms, member{id, c})
	}
	// The reference: consuming longest, else started first; ties by id.
	sort.Slice(ms, func(i, j int) bool {
		a, b := ms[i].cfg, ms[j].cfg
		if (a == nil) != (b == nil) {
			return a != nil
		}
		if a != nil {
			ac, bc := a.Consuming != 0, b.Consuming != 0
			switch {
			case ac != bc:
				return ac
			case ac && a.Consuming != b.Consuming:
				return a.Consuming < b.Consuming
			case a.Started != b.Started:
				return a.Started < b.Started
			}
		}
		return ms[i].id < ms[j].id
	})
	verdicts := map[string][]byte{}
	ok := map[string]sarama.ConsumerGroupMemberMetadata{}
	ref := ms[0]
	for _, m := range ms {
		why := ""
		switch {
		case ref.cfg == nil:
			// No member says its configuration: nothing to compare.
		case m.cfg == nil:
			why = "it does not say its configuration (not a gtsm processor, or an older one)"
		default:
			why = m.cfg.differs(ref.cfg)
		}
		if why == "" {
			ok[m.id] = members[m.id]
			continue
		}
		since := "started " + time.Unix(0, ref.cfg.Started).UTC().Format(time.RFC3339Nano)
		if ref.cfg.Consuming != 0 {
			since = "consuming since " + time.Unix(0, ref.cfg.Consuming).UTC().Format(time.RFC3339Nano)
		}
		msg := fmt.Sprintf("member %s differs from member %s (%s) of group %s: %s", m.id, ref.id, since, s.group, why)
		verdicts[m.id] = []byte(verdictPrefix + msg)
		s.log("consumer group member refused: its configuration differs", "group", s.group, "member", m.id, "reference", ref.id, "differs", why)
	}
	plan, err := s.BalanceStrategy.Plan(ok, topics)
	if err != nil {
		return nil, err
	}
	for id := range verdicts {
		plan[id] = map[string][]int32{} // an assignment, so the verdict reaches the member
	}
	s.mu.Lock()
	s.verdicts = verdicts
	s.mu.Unlock()
	return plan, nil
}

// AssignmentData is the leader's verdict for one member (nil: agreed).
func (s *agreeStrategy) AssignmentData(memberID string, _ map[string][]int32, _ int32) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.verdicts[memberID], nil
}

// OnAssignment is every member's: a verdict stops it; a first non-empty
// assignment is remembered, so that a later joiner that differs is the one
// refused, not the member already consuming.
func (s *agreeStrategy) OnAssignment(a *sarama.ConsumerGroupMemberAssignment, _ int32) {
	if v, ok := bytes.CutPrefix(a.UserData, []byte(verdictPrefix)); ok {
		s.refuse(fmt.Errorf("%w: %s; stopping: every member of a group must be started with the same settings", ErrConfigMismatch, v))
		return
	}
	n := 0
	for _, ps := range a.Topics {
		n += len(ps)
	}
	s.mu.Lock()
	if n > 0 && s.self.Consuming == 0 {
		s.self.Consuming = time.Now().UnixNano()
	}
	s.mu.Unlock()
}

// stateDirID returns the identity of a state directory, creating it on
// first use. Members racing to create it agree: the file is linked into
// place, never overwritten, and whoever loses reads the winner's.
func stateDirID(dir string) (string, error) {
	path := filepath.Join(dir, stateDirIDFile)
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
		return "", fmt.Errorf("state directory identity %s is empty", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("state directory identity: %w", err)
	}
	var r [16]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails (Go 1.24+)
	id := hex.EncodeToString(r[:])
	tmp, err := os.CreateTemp(dir, stateDirIDFile+".tmp*")
	if err != nil {
		return "", fmt.Errorf("state directory identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(id + "\n"); err != nil {
		tmp.Close()
		return "", fmt.Errorf("state directory identity: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("state directory identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("state directory identity: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("state directory identity: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("state directory identity: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// agreement builds this member's configuration statement and installs the
// agreeing strategy in the processor's sarama config (before goka is built).
func (p *Processor) agreement() error {
	hw, err := HighWatermarks(p.cfg.Brokers, p.sarama, p.cfg.Topic)
	if err != nil {
		return err
	}
	self := memberConfig{Started: time.Now().UnixNano(), Topic: p.cfg.Topic, Partitions: len(hw), Level2: !p.cfg.NoLevel2}
	if !p.cfg.NoLevel2 {
		self.MetadataTopic = p.cfg.MetadataTopic
	}
	self.Host, _ = os.Hostname()
	if p.cfg.StateDir != "" {
		id, err := stateDirID(p.cfg.StateDir)
		if err != nil {
			return err
		}
		abs, err := filepath.Abs(p.cfg.StateDir)
		if err != nil {
			abs = p.cfg.StateDir
		}
		self.StateDir, self.StateDirID = abs, id
	}
	// goka sets the (deprecated, but first-consulted) single strategy to
	// its copartitioning one; it is wrapped, under its own name.
	rb := &p.sarama.Consumer.Group.Rebalance
	inner := rb.Strategy //nolint:staticcheck // what goka sets
	if inner == nil && len(rb.GroupStrategies) > 0 {
		inner = rb.GroupStrategies[0]
	}
	s := newAgreeStrategy(inner, p.instanceTag, p.cfg.Group, self, p.fail, p.log.Warn)
	rb.Strategy = s //nolint:staticcheck // sarama consults it before GroupStrategies
	rb.GroupStrategies = []sarama.BalanceStrategy{s}
	p.sarama.Consumer.Group.Member.UserData = s.userData()
	return nil
}
