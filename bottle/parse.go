package bottle

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// File is one parsed bottle file. Integer channels (int16, int32) are held in
// Ints, float channels in Floats; the other slice is nil.
type File struct {
	Name   string // where it came from (path, or archive!member), for messages
	Info   Name   // what the file name says; set by the file/archive readers, zero from Parse
	Header Header
	Ints   []int32
	Floats []float32
}

// Len is the number of samples.
func (f *File) Len() int {
	if f.Header.DataType == Float32 {
		return len(f.Floats)
	}
	return len(f.Ints)
}

// IsMissing reports whether sample i holds the header's fill value. Floats are
// compared as float32(missing), i.e. 999999.0.
func (f *File) IsMissing(i int) bool {
	if f.Header.DataType == Float32 {
		return f.Floats[i] == float32(f.Header.Missing)
	}
	return f.Ints[i] == f.Header.Missing
}

// ParseHeader decodes and validates the header at the start of data. It
// checks only what the header itself can tell; body length is checked by Parse.
func ParseHeader(data []byte) (Header, error) {
	var h Header
	if len(data) < MinHeaderSize {
		if len(data) == 0 {
			return h, fmt.Errorf("empty file")
		}
		return h, fmt.Errorf("header truncated: %d bytes, need %d", len(data), MinHeaderSize)
	}
	switch {
	case data[0] == 0x5D && data[1] == 0x01:
	case data[0] == 0x01 && data[1] == 0x5D:
		h.BigEndian = true
	default:
		return h, fmt.Errorf("bad magic % X at offset 0 (want 5D 01 little-endian or 01 5D big-endian)", data[:2])
	}
	bo := h.ByteOrder()
	h.Unused = int16(bo.Uint16(data[2:]))
	h.HeaderSize = int32(bo.Uint32(data[4:]))
	h.Start = math.Float64frombits(bo.Uint64(data[8:]))
	h.Interval = math.Float32frombits(bo.Uint32(data[16:]))
	h.NumPts = int32(bo.Uint32(data[20:]))
	h.DataType = DataType(int32(bo.Uint32(data[24:])))
	h.Missing = int32(bo.Uint32(data[28:]))
	h.USGSLock = int32(bo.Uint32(data[32:]))
	h.ID = int32(bo.Uint32(data[36:]))
	if h.HeaderSize < MinHeaderSize {
		return h, fmt.Errorf("header_size %d at offset 4 is below %d", h.HeaderSize, MinHeaderSize)
	}
	if h.DataType.Size() == 0 {
		return h, fmt.Errorf("unknown data_type %d at offset 24 (want 0 int16, 1 int32, 2 float32)", int32(h.DataType))
	}
	if h.NumPts < 0 {
		return h, fmt.Errorf("negative num_pts %d at offset 20", h.NumPts)
	}
	if math.IsNaN(h.Start) || math.IsInf(h.Start, 0) || math.Abs(h.Start) > 1e12 {
		return h, fmt.Errorf("start %v at offset 8 is not a plausible epoch time", h.Start)
	}
	if !(h.Interval > 0) || math.IsInf(float64(h.Interval), 0) || h.IntervalMs() <= 0 || h.Interval > 1e7 {
		return h, fmt.Errorf("interval %v at offset 16 is not a positive number of milliseconds", h.Interval)
	}
	return h, nil
}

// BodySize is the number of body bytes the header promises.
func (h *Header) BodySize() int64 { return int64(h.NumPts) * int64(h.DataType.Size()) }

// Parse decodes a whole bottle file held in memory: exactly header_size +
// num_pts samples, no more, no less. name is used only in error messages. It never allocates more than data can hold.
func Parse(name string, data []byte) (*File, error) {
	h, err := ParseHeader(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	body := int64(len(data)) - int64(h.HeaderSize)
	if body < h.BodySize() {
		return nil, fmt.Errorf("%s: truncated body: header_size %d + num_pts %d × %d bytes needs %d bytes, file has %d",
			name, h.HeaderSize, h.NumPts, h.DataType.Size(), int64(h.HeaderSize)+h.BodySize(), len(data))
	}
	// A bottle file has no trailer. Extra bytes mean num_pts or data_type is
	// wrong (or two files were glued together): refuse rather than silently
	// drop data.
	if body > h.BodySize() {
		return nil, fmt.Errorf("%s: %d bytes after the last sample: header_size %d + num_pts %d × %d bytes ends at %d, file has %d",
			name, body-h.BodySize(), h.HeaderSize, h.NumPts, h.DataType.Size(), int64(h.HeaderSize)+h.BodySize(), len(data))
	}
	f := &File{Name: name, Header: h}
	decodeBody(f, data[h.HeaderSize:int64(h.HeaderSize)+h.BodySize()])
	return f, nil
}

// hostLittleEndian is fixed by the CPU; it enables the bulk-copy decoder.
var hostLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// decodeBody fills f's sample slice from exactly BodySize bytes.
func decodeBody(f *File, b []byte) { decodeBodyWith(f, b, hostLittleEndian) }

// decodeBodyWith decodes the body; bulk allows the memory copy for 4-byte
// little-endian samples, valid only on a little-endian host. Real files are
// little-endian int32 and float32, and on such a host their bytes already
// are the in-memory []int32 / []float32: one copy (memmove) decodes them at
// memory speed. Everything else goes through the portable per-sample loop,
// which TestDecodeBulkMatchesLoop compares against the copy.
func decodeBodyWith(f *File, b []byte, bulk bool) {
	n := int(f.Header.NumPts)
	bulk = bulk && !f.Header.BigEndian
	switch f.Header.DataType {
	case Int16:
		b = b[:2*n]
		out := make([]int32, n)
		if f.Header.BigEndian {
			for i := range out {
				out[i] = int32(int16(binary.BigEndian.Uint16(b[2*i:])))
			}
		} else {
			for i := range out {
				out[i] = int32(int16(binary.LittleEndian.Uint16(b[2*i:])))
			}
		}
		f.Ints = out
	case Int32:
		b = b[:4*n]
		out := make([]int32, n)
		switch {
		case bulk:
			copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), 4*n), b)
		case f.Header.BigEndian:
			for i := range out {
				out[i] = int32(binary.BigEndian.Uint32(b[4*i:]))
			}
		default:
			for i := range out {
				out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
			}
		}
		f.Ints = out
	case Float32:
		b = b[:4*n]
		out := make([]float32, n)
		switch {
		case bulk:
			copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), 4*n), b)
		case f.Header.BigEndian:
			for i := range out {
				out[i] = math.Float32frombits(binary.BigEndian.Uint32(b[4*i:]))
			}
		default:
			for i := range out {
				out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		}
		f.Floats = out
	}
}
