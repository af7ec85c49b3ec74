package partition

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/IBM/sarama"
)

// Vectors from Kafka's own UtilsTest.testMurmur2 (Java).
func TestMurmur2JavaVectors(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		if got := Murmur2([]byte(c.in)); got != c.want {
			t.Errorf("Murmur2(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

// sarama's murmur2 partitioner is an independent implementation of the same
// Java formula; random keys of every tail length must land on the same partition.
func TestForAgreesWithSarama(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int32{1, 3, 10, 12, 64} {
		p := sarama.NewMurmur2Partitioner("gtsm_etl")
		for i := 0; i < 2000; i++ {
			key := make([]byte, rng.IntN(40))
			for j := range key {
				key[j] = byte(rng.Uint32())
			}
			want, err := p.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(key)}, n)
			if err != nil {
				t.Fatal(err)
			}
			if got := For(key, n); got != want {
				t.Fatalf("For(%x, %d) = %d, sarama says %d", key, n, got, want)
			}
		}
	}
}

// goka computes int32(hasher.Sum32()) % n after Reset+Write; check that path.
func TestHasherLikeGoka(t *testing.T) {
	h := NewHasher()
	for i := 0; i < 500; i++ {
		key := []byte(fmt.Sprintf("B%03d", i))
		h.Reset()
		h.Write(key)
		got := int32(h.Sum32()) % 10
		if got < 0 {
			t.Fatalf("negative partition %d for %q", got, key)
		}
		if want := For(key, 10); got != want {
			t.Fatalf("goka path gives %d for %q, For gives %d", got, key, want)
		}
	}
}
