package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/secmail/secmail/article"
)

// StreamConfigs returns the three stream configurations the pipeline uses
// (inputs, results, dead letters), for operators who create them by hand.
//
// Subjects are listed exactly rather than with wildcards: streams may not
// overlap, and <prefix>.*.result would overlap <prefix>.dead.> on the
// subject <prefix>.dead.result.
func (cfg Config) StreamConfigs() []jetstream.StreamConfig {
	cfg = cfg.Defaults()
	return []jetstream.StreamConfig{
		{
			Name:        cfg.InputStream,
			Description: "secmail: articles to process (work queue)",
			Subjects:    []string{cfg.InputSubject(article.Inbound), cfg.InputSubject(article.Outbound)},
			Retention:   jetstream.WorkQueuePolicy,
			// Refuse new articles rather than drop queued ones when an
			// operator sets limits.
			Discard:  jetstream.DiscardNew,
			Storage:  jetstream.FileStorage,
			Replicas: cfg.Replicas,
		},
		{
			Name:        cfg.ResultStream,
			Description: "secmail: results, one per article",
			Subjects:    []string{cfg.ResultSubject(article.Inbound), cfg.ResultSubject(article.Outbound)},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      cfg.ResultMaxAge,
			Duplicates:  cfg.DuplicateWindow,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
		},
		{
			Name:        cfg.DeadStream,
			Description: "secmail: dead letters (original payload, headers say why)",
			Subjects:    []string{cfg.DeadSubject(article.Inbound), cfg.DeadSubject(article.Outbound)},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      cfg.DeadMaxAge,
			Duplicates:  cfg.DuplicateWindow,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
		},
	}
}

// ConsumerConfig returns the durable pull consumer for dir.
func (cfg Config) ConsumerConfig(dir article.Direction) jetstream.ConsumerConfig {
	cfg = cfg.Defaults()
	return jetstream.ConsumerConfig{
		Durable:       cfg.durable(dir),
		Description:   "secmail workers, " + string(dir),
		FilterSubject: cfg.InputSubject(dir),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		MaxAckPending: cfg.MaxAckPending,
		Replicas:      cfg.Replicas,
	}
}

// ObjectStoreConfig returns the claim-check bucket's configuration.
func (cfg Config) ObjectStoreConfig() jetstream.ObjectStoreConfig {
	cfg = cfg.Defaults()
	return jetstream.ObjectStoreConfig{
		Bucket:      cfg.ObjectStoreBucket,
		Description: "secmail: large articles and results (claim check)",
		TTL:         cfg.ResultMaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	}
}

// Setup creates or updates (idempotently) the streams, consumers and
// object store bucket cfg describes. Every replica may call it at start-up.
func Setup(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	cfg = cfg.Defaults()
	for _, sc := range cfg.StreamConfigs() {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("pipeline: stream %s: %w", sc.Name, err)
		}
	}
	for _, dir := range directions {
		cc := cfg.ConsumerConfig(dir)
		if _, err := js.CreateOrUpdateConsumer(ctx, cfg.InputStream, cc); err != nil {
			return fmt.Errorf("pipeline: consumer %s: %w", cc.Durable, err)
		}
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, cfg.ObjectStoreConfig()); err != nil {
		return fmt.Errorf("pipeline: object store %s: %w", cfg.ObjectStoreBucket, err)
	}
	return nil
}

// verify checks that what an operator manages exists.
func verify(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	var errs []error
	for _, sc := range cfg.StreamConfigs() {
		if _, err := js.Stream(ctx, sc.Name); err != nil {
			errs = append(errs, fmt.Errorf("stream %s: %w", sc.Name, err))
		}
	}
	for _, dir := range directions {
		if _, err := js.Consumer(ctx, cfg.InputStream, cfg.durable(dir)); err != nil {
			errs = append(errs, fmt.Errorf("consumer %s: %w", cfg.durable(dir), err))
		}
	}
	if _, err := js.ObjectStore(ctx, cfg.ObjectStoreBucket); err != nil {
		errs = append(errs, fmt.Errorf("object store %s: %w", cfg.ObjectStoreBucket, err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pipeline: JetStream is not set up (run with stream management enabled, or create them): %w", err)
	}
	return nil
}
