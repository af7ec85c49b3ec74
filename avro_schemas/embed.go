// Package avroschemas embeds the gtsm_etl key and value schemas, so the binary
// works with no files around it. AVRO_SCHEMAS_ROOT may override them at run time
// (see record.LoadSchemas).
package avroschemas

import _ "embed"

// Key is gtsm_etl-key.avsc: the record {site}.
//
//go:embed gtsm_etl-key.avsc
var Key string

// Value is gtsm_etl-value.avsc: site, time, timestamp and 56 nullable int fields.
//
//go:embed gtsm_etl-value.avsc
var Value string

// Metadata is gtsm_metadata-value.avsc: one station's Level-2 metadata
// (package metadata), the value of the compacted gtsm_metadata topic.
//
//go:embed gtsm_metadata-value.avsc
var Metadata string
