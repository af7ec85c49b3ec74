package record

import "time"

// appendTimestamp appends FormatTimestamp(ms) without going through
// time.Format (which costs ~4× as much): civil date from the day number
// (H. Hinnant's days_from_civil inverse), then fixed-width digits. Years
// outside 0000..9999 take time.Format, whose output is the reference.
func appendTimestamp(dst []byte, ms int64) []byte {
	const msPerDay = 86400000
	days, rem := ms/msPerDay, ms%msPerDay
	if rem < 0 {
		days, rem = days-1, rem+msPerDay
	}
	// Civil date of days since 1970-01-01.
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	if y < 0 || y > 9999 {
		return append(dst, formatSlow(ms)...)
	}
	sec := rem / 1000
	milli := rem % 1000
	dst = append(dst,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10), ' ',
		byte('0'+sec/36000), byte('0'+sec/3600%10), ':',
		byte('0'+sec/60%60/10), byte('0'+sec/60%10), ':',
		byte('0'+sec%60/10), byte('0'+sec%10))
	if milli != 0 {
		dst = append(dst, '.', byte('0'+milli/100), byte('0'+milli/10%10), byte('0'+milli%10))
	}
	return dst
}

// formatSlow is FormatTimestamp by time.Format.
func formatSlow(ms int64) string {
	t := time.UnixMilli(ms).UTC()
	if ms%1000 != 0 {
		return t.Format("2006-01-02 15:04:05.000")
	}
	return t.Format("2006-01-02 15:04:05")
}
