// Package bottle reads and writes GTSM strainmeter "bottle" files: a fixed
// 40-byte header followed by the samples of one channel. The format is
// described in ../shared/reference/bottle-format.md.
package bottle

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Magic is the first int16 of every bottle file. Its byte order on disk
// tells the byte order of the whole file.
const Magic = 0x015D

// MinHeaderSize is the size of the fixed header. A file may declare a larger
// header_size (data then starts there); a smaller one is invalid.
const MinHeaderSize = 40

// DataType is the sample type stored in the body.
type DataType int32

const (
	Int16   DataType = 0
	Int32   DataType = 1
	Float32 DataType = 2
)

// Size is the number of bytes of one sample, or 0 for an unknown type.
func (t DataType) Size() int {
	switch t {
	case Int16:
		return 2
	case Int32, Float32:
		return 4
	}
	return 0
}

func (t DataType) String() string {
	switch t {
	case Int16:
		return "int16"
	case Int32:
		return "int32"
	case Float32:
		return "float32"
	}
	return fmt.Sprintf("DataType(%d)", int32(t))
}

// Header is the decoded 40-byte bottle header.
type Header struct {
	BigEndian  bool     // byte order of the file, from the magic
	Unused     int16    // offset 2, always 0 in real files
	HeaderSize int32    // offset 4: where the samples start
	Start      float64  // offset 8: Unix epoch seconds (UTC) of sample 0
	Interval   float32  // offset 16: seconds per sample
	NumPts     int32    // offset 20: number of samples
	DataType   DataType // offset 24
	Missing    int32    // offset 28: fill value for missing samples
	USGSLock   int32    // offset 32
	ID         int32    // offset 36: channel class
}

// ByteOrder returns the binary byte order of the file.
func (h *Header) ByteOrder() binary.ByteOrder {
	if h.BigEndian {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// StartMs is the time of sample 0 in integer epoch milliseconds.
func (h *Header) StartMs() int64 { return int64(math.Round(h.Start * 1000)) }

// IntervalMs is the sample interval in integer milliseconds. The float32
// interval 0.05 is stored as 0.0500000007; rounding gives exactly 50.
func (h *Header) IntervalMs() int64 { return int64(math.Round(float64(h.Interval) * 1000)) }

// TimeMs is the time of sample i, computed in integers so that no float
// error accumulates over a day of 20 sps samples.
func (h *Header) TimeMs(i int) int64 { return h.StartMs() + int64(i)*h.IntervalMs() }
