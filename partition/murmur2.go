// Package partition places gtsm_etl keys on partitions exactly as Kafka's Java
// client does (murmur2 of the serialized key bytes, made positive, modulo the
// partition count), so Java, Flink, librdkafka (partitioner=murmur2_random),
// franz-go and goka all agree on where a site lives.
package partition

import "hash"

// Murmur2 is Kafka's org.apache.kafka.common.utils.Utils.murmur2.
func Murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// For returns the partition of a serialized key among n partitions, as Java's
// DefaultPartitioner / BuiltInPartitioner: toPositive(murmur2(key)) % n.
func For(key []byte, n int32) int32 {
	return int32(uint32(Murmur2(key))&0x7fffffff) % n
}

// Hasher is a hash.Hash32 whose Sum32 is murmur2(key) & 0x7fffffff. goka
// computes int32(Sum32()) % partitions, so giving it this hasher (WithHasher,
// WithEmitterHasher, WithViewHasher) makes goka partition like Java.
type Hasher struct{ buf []byte }

// NewHasher returns a fresh Hasher; its type fits goka's func() hash.Hash32.
func NewHasher() hash.Hash32 { return &Hasher{} }

func (h *Hasher) Write(p []byte) (int, error) { h.buf = append(h.buf, p...); return len(p), nil }
func (h *Hasher) Sum(b []byte) []byte {
	s := h.Sum32()
	return append(b, byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
}
func (h *Hasher) Sum32() uint32  { return uint32(Murmur2(h.buf)) & 0x7fffffff }
func (h *Hasher) Reset()         { h.buf = h.buf[:0] }
func (h *Hasher) Size() int      { return 4 }
func (h *Hasher) BlockSize() int { return 4 }
