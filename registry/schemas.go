package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	avroschemas "github.com/earthscope/gtsm-stream/avro_schemas"
)

// LoadSchemas returns the key and value schemas for topic, as the original
// producer found them: with root empty, the schemas embedded in the binary;
// otherwise root/<topic>-key.avsc and root/<topic>-value.avsc, and for a
// file absent from root the latest version registered under the subject
// <topic>-key or <topic>-value (c may be nil when both files exist).
func LoadSchemas(ctx context.Context, c *Client, root, topic string) (key, value string, err error) {
	if root == "" {
		return avroschemas.Key, avroschemas.Value, nil
	}
	if key, err = loadOne(ctx, c, root, topic+"-key"); err != nil {
		return "", "", err
	}
	if value, err = loadOne(ctx, c, root, topic+"-value"); err != nil {
		return "", "", err
	}
	return key, value, nil
}

func loadOne(ctx context.Context, c *Client, root, subject string) (string, error) {
	path := filepath.Join(root, subject+".avsc")
	data, err := os.ReadFile(path)
	if err == nil {
		return string(data), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("schema file: %w", err)
	}
	if c == nil {
		return "", fmt.Errorf("%s is absent and no schema registry is configured to fall back to", path)
	}
	_, s, err := c.Latest(ctx, subject)
	if err != nil {
		return "", fmt.Errorf("%s is absent, so the registry's latest %s was wanted: %w", path, subject, err)
	}
	return s, nil
}
