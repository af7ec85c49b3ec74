package bottle

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// File is one parsed bottle file. Integer channels (int16, int32) are held in
// Ints, float channels in Floats; the other slice is nil.
//
// A File from ReadHeader (or from Walk with WalkOptions.LazyOver) holds only
// its header: its samples stay on disk, Ints and Floats are nil, and they are
// read chunk by chunk with Samples. OnDisk tells the two kinds apart.
type File struct {
	Name   string // where it came from (path, or archive!member), for messages
	Info   Name   // what the file name says; set by the file/archive readers, zero from Parse
	Header Header
	Ints   []int32
	Floats []float32

	// disk is set for a file whose samples were left on disk.
	disk *diskSource
}

// Len is the number of samples.
func (f *File) Len() int {
	if f.disk != nil {
		return int(f.Header.NumPts)
	}
	if f.Header.DataType == Float32 {
		return len(f.Floats)
	}
	return len(f.Ints)
}

// IsMissing reports whether sample i holds the header's fill value. Floats are
// compared as float32(missing), i.e. 999999.0. It needs the samples in memory
// (not OnDisk); a Samples chunk is checked with Header.MissingInt/MissingFloat.
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
	if err := checkSize(name, &h, int64(len(data))); err != nil {
		return nil, err
	}
	f := &File{Name: name, Header: h}
	decodeBody(f, data[h.HeaderSize:int64(h.HeaderSize)+h.BodySize()])
	return f, nil
}

// checkSize checks that a file of size bytes holds exactly header_size +
// num_pts samples, no more, no less.
func checkSize(name string, h *Header, size int64) error {
	body := size - int64(h.HeaderSize)
	if body < h.BodySize() {
		return fmt.Errorf("%s: truncated body: header_size %d + num_pts %d × %d bytes needs %d bytes, file has %d",
			name, h.HeaderSize, h.NumPts, h.DataType.Size(), int64(h.HeaderSize)+h.BodySize(), size)
	}
	// A bottle file has no trailer. Extra bytes mean num_pts or data_type is
	// wrong (or two files were glued together): refuse rather than silently
	// drop data.
	if body > h.BodySize() {
		return fmt.Errorf("%s: %d bytes after the last sample: header_size %d + num_pts %d × %d bytes ends at %d, file has %d",
			name, body-h.BodySize(), h.HeaderSize, h.NumPts, h.DataType.Size(), int64(h.HeaderSize)+h.BodySize(), size)
	}
	return nil
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
	if f.Header.DataType == Float32 {
		f.Floats = make([]float32, n)
	} else {
		f.Ints = make([]int32, n)
	}
	decodeInto(&f.Header, b, f.Ints, f.Floats, bulk)
}

// decodeInto decodes len(ints) (int16, int32) or len(floats) (float32)
// samples of h's type and byte order from the start of b into the given
// slice; the other slice is ignored. It is the body decoder for whole files
// (decodeBodyWith) and for the chunks of a file read from disk (Samples).
func decodeInto(h *Header, b []byte, ints []int32, floats []float32, bulk bool) {
	bulk = bulk && !h.BigEndian
	switch h.DataType {
	case Int16:
		n := len(ints)
		b = b[:2*n]
		if h.BigEndian {
			for i := range ints {
				ints[i] = int32(int16(binary.BigEndian.Uint16(b[2*i:])))
			}
		} else {
			for i := range ints {
				ints[i] = int32(int16(binary.LittleEndian.Uint16(b[2*i:])))
			}
		}
	case Int32:
		n := len(ints)
		b = b[:4*n]
		switch {
		case bulk && n > 0:
			copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(ints))), 4*n), b)
		case h.BigEndian:
			for i := range ints {
				ints[i] = int32(binary.BigEndian.Uint32(b[4*i:]))
			}
		default:
			for i := range ints {
				ints[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
			}
		}
	case Float32:
		n := len(floats)
		b = b[:4*n]
		switch {
		case bulk && n > 0:
			copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(floats))), 4*n), b)
		case h.BigEndian:
			for i := range floats {
				floats[i] = math.Float32frombits(binary.BigEndian.Uint32(b[4*i:]))
			}
		default:
			for i := range floats {
				floats[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		}
	}
}
