package querysvc

import "testing"

// ParseSize reads sizes as DuckDB's memory_limit does (decimal KB/MB/GB,
// binary KiB/MiB/GiB) and refuses what DuckDB would.
func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{"1GB", 1e9, false},
		{"512MB", 512e6, false},
		{"2GiB", 2 << 30, false},
		{"1.5 GB", 1.5e9, false},
		{"256mib", 256 << 20, false},
		{"1000", 1000, false},
		{"", 0, true},
		{"GB", 0, true},
		{"-1GB", 0, true},
		{"1 PB", 0, true},
		{"lots", 0, true},
	} {
		got, err := ParseSize(c.in)
		if c.bad != (err != nil) || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d (error: %v)", c.in, got, err, c.want, c.bad)
		}
	}
}

// The address-space bound grows with what it bounds, and with the
// defaults stays above what an idle query process maps (1.9 GB measured).
func TestAddressSpace(t *testing.T) {
	def := AddressSpace(1e9, 64)
	if def < 4<<30 {
		t.Errorf("default address space %d: below 4 GiB, an idle query process maps 1.9 GB", def)
	}
	if AddressSpace(2e9, 64) != def+2e9 || AddressSpace(1e9, 65) != def+8<<20 {
		t.Errorf("address space is not base + 2 x memory_limit + 8 MiB per connection")
	}
}
