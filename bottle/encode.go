package bottle

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Encode writes f as a bottle file: the 40-byte header in the byte order of
// f.Header.BigEndian, zero padding up to Header.HeaderSize (0 means 40), then
// the samples of Header.DataType taken from Ints (int16, int32) or Floats
// (float32). num_pts is written as the number of samples; a non-zero
// Header.NumPts that disagrees is an error, as is an int16 sample out of range.
func Encode(f *File) ([]byte, error) { return Append(nil, f) }

// Append is Encode appending to dst.
func Append(dst []byte, f *File) ([]byte, error) {
	h := f.Header
	name := f.Name
	if name == "" {
		name = "bottle"
	}
	size := h.DataType.Size()
	if size == 0 {
		return dst, fmt.Errorf("encode %s: unknown data type %d", name, int32(h.DataType))
	}
	hs := h.HeaderSize
	if hs == 0 {
		hs = MinHeaderSize
	}
	if hs < MinHeaderSize {
		return dst, fmt.Errorf("encode %s: header_size %d below %d", name, hs, MinHeaderSize)
	}
	var n int
	if h.DataType == Float32 {
		if len(f.Ints) != 0 {
			return dst, fmt.Errorf("encode %s: float32 file with %d Ints (samples belong in Floats)", name, len(f.Ints))
		}
		n = len(f.Floats)
	} else {
		if len(f.Floats) != 0 {
			return dst, fmt.Errorf("encode %s: %s file with %d Floats (samples belong in Ints)", name, h.DataType, len(f.Floats))
		}
		n = len(f.Ints)
	}
	if n > math.MaxInt32 {
		return dst, fmt.Errorf("encode %s: %d samples exceed num_pts range", name, n)
	}
	if h.NumPts != 0 && int(h.NumPts) != n {
		return dst, fmt.Errorf("encode %s: Header.NumPts %d but %d samples", name, h.NumPts, n)
	}
	orig := dst
	dst = slices.Grow(dst, int(hs)+n*size)
	var bo binary.AppendByteOrder = binary.LittleEndian
	if h.BigEndian {
		bo = binary.BigEndian
	}
	dst = bo.AppendUint16(dst, Magic)
	dst = bo.AppendUint16(dst, uint16(h.Unused))
	dst = bo.AppendUint32(dst, uint32(hs))
	dst = bo.AppendUint64(dst, math.Float64bits(h.Start))
	dst = bo.AppendUint32(dst, math.Float32bits(h.Interval))
	dst = bo.AppendUint32(dst, uint32(n))
	dst = bo.AppendUint32(dst, uint32(h.DataType))
	dst = bo.AppendUint32(dst, uint32(h.Missing))
	dst = bo.AppendUint32(dst, uint32(h.USGSLock))
	dst = bo.AppendUint32(dst, uint32(h.ID))
	for i := MinHeaderSize; i < int(hs); i++ {
		dst = append(dst, 0)
	}
	switch h.DataType {
	case Int16:
		for i, v := range f.Ints {
			if v < math.MinInt16 || v > math.MaxInt16 {
				return orig, fmt.Errorf("encode %s: sample %d = %d does not fit int16", name, i, v)
			}
			dst = bo.AppendUint16(dst, uint16(int16(v)))
		}
	case Int32:
		for _, v := range f.Ints {
			dst = bo.AppendUint32(dst, uint32(v))
		}
	case Float32:
		for _, v := range f.Floats {
			dst = bo.AppendUint32(dst, math.Float32bits(v))
		}
	}
	return dst, nil
}
