"""Fill a context with a large organisation's registry, for bench/scale.py (PostgreSQL only).

The small rows (users, tags, models and their tags) are made in Python, where names get the
same cleaning and look-alike keys the services give them, and copied in with COPY. The large
tables (versions, formats, metric points, audit events) are written by the database itself:
INSERT ... SELECT over generate_series, one statement per batch, from two helper tables that
number the models and the versions (temporary: they vanish with the connection). Each batch
commits on its own.

The rows keep every constraint (unique names and look-alike keys, version numbers below the
model's counter and at most REGISTRY_MAX_VERSIONS per model, at most REGISTRY_MAX_FORMATS
formats per version and one per kind, published versions with a time and only stored, ready
files, one value per metric) and leave the generated columns to the database. No file is
stored: a seeded format names a storage key nothing holds, so downloading it fails; every
read that does not open a file works as for uploaded ones.
"""

from __future__ import annotations

import io
import random
import sys
import time
import uuid

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from registry import services
from registry.errors import RegistryError
from registry.models import AuditEvent, Context, Membership, Model, Role, Tag
from registry.names import lookalike_key
from registry.services.common import normalize_name

# Who acts in the seeded context, with their role; the audit log's actors.
ACTORS = [
    ("scale-admin", Role.ADMIN), ("ada", Role.PUBLISHER), ("grace", Role.PUBLISHER), ("linus", Role.EDITOR),
    ("margaret", Role.EDITOR), ("ci-bot", Role.EDITOR), ("ken", Role.VIEWER),
]
WRITERS = ["ada", "grace", "linus", "margaret", "ci-bot", "ci-bot", "ci-bot"]  # the bot does most of the work
PUBLISHERS = ["ada", "grace"]
DOMAINS = [
    "fraud", "churn", "credit", "ranking", "search", "speech", "vision", "pricing", "demand", "forecast",
    "spam", "toxicity", "sentiment", "ocr", "translation", "recsys", "anomaly", "routing", "eta", "ads",
    "ctr", "ltv", "risk", "kyc", "aml", "claims", "triage", "retention", "upsell", "inventory",
    "supply", "weather", "energy", "traffic", "moderation", "lead-scoring", "segmentation", "attribution",
    "intent", "embedding",
]
ALGORITHMS = [
    "xgboost", "lightgbm", "catboost", "logreg", "random-forest", "bert", "resnet", "transformer",
    "lstm", "gru", "prophet", "arima", "svm", "knn", "mlp", "two-tower", "gbdt", "tabnet", "vit", "whisper",
]
TASKS = ["Binary classification", "Multiclass classification", "Regression", "Ranking", "Forecasting",
         "Embedding", "Sequence labelling", "Speech recognition", "Object detection", "Anomaly detection"]
EXTRA_TAGS = ["production-ready", "experimental", "deprecated", "gpu", "cpu-only", "quantized", "pii-free",
              "reviewed", "baseline", "candidate", "shadow", "champion"]
TEAMS = 50
# Per framework: its version and the three kinds of file a version of it keeps (distinct).
FRAMEWORKS = [
    ("sklearn", "1.5.2", ("pkl", "joblib", "onnx")),
    ("xgboost", "2.1.1", ("pkl", "onnx", "other")),
    ("pytorch", "2.4.0", ("pt", "safetensors", "onnx")),
    ("lightgbm", "4.5.0", ("pkl", "onnx", "joblib")),
    ("tensorflow", "2.17.0", ("savedmodel", "h5", "onnx")),
]
METRIC_KEYS = ["loss", "accuracy"]
SPAN_DAYS = 3 * 365  # the seeded history ends now and starts this long ago


def log(message: str) -> None:
    print(f"[seed_scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def version_counts(models: int, versions: int, rng: random.Random) -> list[int]:
    """How many versions each model has: `versions` in all, between 0 and REGISTRY_MAX_VERSIONS
    each, uneven (some models at the limit), in a fixed order for a given seed."""
    limit = settings.REGISTRY_MAX_VERSIONS
    base, extra = divmod(versions, models)
    counts = [base + (1 if i < extra else 0) for i in range(models)]
    # Move versions between pairs of models, keeping the total, so the counts spread out; every
    # 50th model is taken to the limit first (a "30-version model" to list).
    for i in range(0, models, 50):
        donors = [j for j in range(i + 1, min(i + 50, models))]
        for j in donors:
            if counts[i] >= limit:
                break
            moved = min(max(counts[j] - 1, 0), limit - counts[i])
            counts[i] += moved
            counts[j] -= moved
    for i in range(0, models - 1, 2):
        if i % 50 == 0:  # leave the model taken to the limit as it is
            continue
        a, b = (i, i + 1) if rng.random() < 0.5 else (i + 1, i)
        moved = rng.randint(0, max(0, min(counts[a] - 1, limit - counts[b])))
        counts[a] -= moved
        counts[b] += moved
    return counts


class Command(BaseCommand):
    help = ("Fill a context with many models, versions, formats, metric points and audit events for "
            "bench/scale.py (PostgreSQL only). Defaults: 100,000 models, 1,000,000 versions, 3,000,000 "
            "formats, 10,000,000 metric points and 10,000,000 audit events; the counts scale down "
            "with --models. Prints the context's slug and the counts made.")

    def add_arguments(self, parser):
        parser.add_argument("--context", default="scale", help="slug of the context, created if missing (default scale)")
        parser.add_argument("--models", type=int, default=100_000)
        parser.add_argument("--versions", type=int, help="default: 10 per model")
        parser.add_argument("--formats", type=int, help="default: 3 per version")
        parser.add_argument("--metrics", type=int, help="metric points; default: 10 per version")
        parser.add_argument("--events", type=int, help="audit events; default: 100 per model")
        parser.add_argument("--batch", type=int, default=500_000, help="rows written per statement (default 500,000)")
        parser.add_argument("--seed", type=int, default=17, help="random seed of the names and counts")
        parser.add_argument("--no-vacuum", action="store_true", help="skip VACUUM ANALYZE of the filled tables")

    def handle(self, *args, context, models, versions, formats, metrics, events, batch, seed, no_vacuum, **options):
        if connection.vendor != "postgresql":
            raise CommandError(
                "seed_scale writes with PostgreSQL's generate_series and COPY: run it with DATABASE_URL "
                f"pointing at PostgreSQL (this database is {connection.vendor}).")
        versions = 10 * models if versions is None else versions
        formats = 3 * versions if formats is None else formats
        metrics = 10 * versions if metrics is None else metrics
        events = 100 * models if events is None else events
        self._check_counts(models, versions, formats, metrics, events, batch)
        self.batch = batch
        started = time.monotonic()
        ctx = self._context(context)
        self.context_id = ctx.pk
        self.actors = self._actors(ctx)
        rng = random.Random(seed)
        with connection.cursor() as cursor:
            self.cursor = cursor
            cursor.execute("SET synchronous_commit = off")  # a lost batch on a crash is only re-seeded
            self._models(ctx, models, versions, rng)
            self._versions(versions)
            self._formats(formats, versions)
            self._metrics(metrics, versions)
            self._lineage(versions)
            self._aliases()
            self._events(events, models, versions)
            cursor.execute("DROP TABLE IF EXISTS seed_model, seed_version")
            if not no_vacuum:
                self._vacuum()
        log(f"done in {time.monotonic() - started:.0f} s")
        self.stdout.write(f"{ctx.slug} models={models} versions={versions} formats={formats} "
                          f"metrics={metrics} events={events}")

    # --- checks and small rows ------------------------------------------------------------

    def _check_counts(self, models, versions, formats, metrics, events, batch):
        limit_v, limit_f = settings.REGISTRY_MAX_VERSIONS, settings.REGISTRY_MAX_FORMATS
        if models < 1:
            raise CommandError("--models must be at least 1.")
        if not 0 <= versions <= limit_v * models:
            raise CommandError(f"--versions must be between 0 and {limit_v} per model (REGISTRY_MAX_VERSIONS).")
        if not 0 <= formats <= min(limit_f, 3) * versions:
            raise CommandError(f"--formats must be between 0 and {min(limit_f, 3)} per version.")
        if metrics < 0 or events < 0 or (metrics and not versions):
            raise CommandError("--metrics and --events cannot be negative, and metrics need versions.")
        if batch < 1000:
            raise CommandError("--batch must be at least 1000.")

    def _context(self, slug: str) -> Context:
        context = Context.objects.filter(slug=slug).first()
        if context is None:
            try:
                return services.context_create(actor=None, slug=slug, name=f"Scale test ({slug})")
            except RegistryError as exc:
                raise CommandError(exc.message) from None
        if Model.objects.filter(context=context).exists():
            raise CommandError(f"Context '{slug}' already has models; seed an empty or a new context.")
        return context

    def _actors(self, context: Context) -> dict[str, int]:
        users = get_user_model().objects
        ids = {}
        for username, role in ACTORS:
            user = users.filter(username=username).first()
            if user is None:
                user = users.create_user(username=username)
                user.set_unusable_password()
                user.save(update_fields=["password"])
            if not Membership.objects.filter(context=context, user=user).exists():
                services.membership_set(actor=None, context=context, role=role, username=username)
            ids[username] = user.pk
        return ids

    def _ids(self, names: list[str]) -> list[int]:
        return [self.actors[name] for name in names]

    def _run(self, what: str, sql: str, params: list, total: int) -> None:
        """`sql` once per batch of indexes [lo, hi), each its own transaction (autocommit)."""
        started, done = time.monotonic(), 0
        for lo in range(0, total, self.batch):
            hi = min(lo + self.batch, total)
            self.cursor.execute(sql, [*params, lo, hi])
            done = hi
            log(f"{what}: {done:,} / {total:,} ({time.monotonic() - started:.0f} s)")

    # --- models ---------------------------------------------------------------------------

    def _models(self, context: Context, models: int, versions: int, rng: random.Random) -> None:
        """Models (with their tags) from Python by COPY, and seed_model numbering them."""
        started = time.monotonic()
        tag_names = [*DOMAINS, *ALGORITHMS, *EXTRA_TAGS, *(f"team-{n:02d}" for n in range(TEAMS))]
        Tag.objects.bulk_create([Tag(name=name, key=name.casefold()) for name in tag_names], ignore_conflicts=True)
        tag_ids = dict(Tag.objects.filter(key__in=[n.casefold() for n in tag_names]).values_list("key", "id"))
        counts = version_counts(models, versions, rng) if versions else [0] * models
        writers, span = self._ids(WRITERS), SPAN_DAYS * 86400
        model_rows, seed_rows, tag_rows = io.StringIO(), io.StringIO(), io.StringIO()
        start_vstart = 0
        for i in range(models):
            domain, algorithm = DOMAINS[i % len(DOMAINS)], ALGORITHMS[(i // len(DOMAINS)) % len(ALGORITHMS)]
            name, name_key = normalize_name(f"{domain}-{algorithm}-{i:06d}")
            # A code found only in this description: letter-digit pairs no name contains.
            code = "".join(rng.choice("abcdefghjkmnpqrstuvwxyz") + rng.choice("23456789") for _ in range(3))
            description = (
                f"{algorithm.replace('-', ' ').title()} model scoring {domain.replace('-', ' ')} for team "
                f"{i % TEAMS:02d}. Trained on the {rng.choice(['daily', 'weekly', 'monthly'])} snapshot, "
                f"experiment {code}. See the version notes for metrics and the evaluation set.")
            writer = writers[i % len(writers)]
            created = int(i * span / models)  # seconds after the start, in index order
            updated = min(span, created + rng.randint(0, 30 * 86400))
            model_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            model_rows.write("\t".join(map(str, [
                model_id, context.pk, name, name_key, lookalike_key(name), description,
                TASKS[i % len(TASKS)], writer, counts[i] + 1, writer, created, writers[(i + 3) % len(writers)], updated,
            ])) + "\n")
            seed_rows.write(f"{i}\t{model_id}\t{counts[i]}\t{start_vstart}\t{created}\t{name}\n")
            start_vstart += counts[i]
            tags = [domain, algorithm, f"team-{i % TEAMS:02d}"]
            if i % 4 == 0:
                tags.append(EXTRA_TAGS[(i // 4) % len(EXTRA_TAGS)])
            for tag in tags:
                tag_rows.write(f"{model_id}\t{tag_ids[tag]}\n")
        cursor = self.cursor
        cursor.execute("SELECT now() - make_interval(days => %s)", [SPAN_DAYS])
        self.epoch = cursor.fetchone()[0]
        cursor.execute("DROP TABLE IF EXISTS seed_model, seed_version")
        cursor.execute(
            "CREATE TEMP TABLE seed_model (idx int PRIMARY KEY, id uuid NOT NULL, nver int NOT NULL, "
            "vstart int NOT NULL, created_at timestamptz NOT NULL, name text NOT NULL, alias_id bigint)")
        with transaction.atomic():
            cursor.execute("CREATE TEMP TABLE seed_model_in (idx int, id uuid, nver int, vstart int, secs int, name text)")
            self._copy("seed_model_in (idx, id, nver, vstart, secs, name)", seed_rows)
            cursor.execute("INSERT INTO seed_model SELECT idx, id, nver, vstart, %s + make_interval(secs => secs), "
                           "name FROM seed_model_in", [self.epoch])
            cursor.execute("DROP TABLE seed_model_in")
            cursor.execute(
                "CREATE TEMP TABLE model_in (id uuid, context_id bigint, name text, name_key text, "
                "name_skeleton text, description text, task text, writer bigint, next_version_number int, "
                "created_by_id bigint, created_secs int, updated_by_id bigint, updated_secs int)")
            self._copy("model_in", model_rows)
            cursor.execute(
                f"INSERT INTO {Model._meta.db_table} (id, context_id, name, name_key, name_skeleton, description, "
                "task, owner_id, metadata, next_version_number, created_by_id, created_at, updated_by_id, updated_at) "
                "SELECT id, context_id, name, name_key, name_skeleton, description, task, writer, "
                "jsonb_build_object('owner_team', 'team-' || lpad((abs(hashtext(name)) %% 50)::text, 2, '0')), "
                "next_version_number, created_by_id, %s + make_interval(secs => created_secs), updated_by_id, "
                "%s + make_interval(secs => updated_secs) FROM model_in", [self.epoch, self.epoch])
            cursor.execute("DROP TABLE model_in")
            self._copy(f"{Model.tags.through._meta.db_table} (model_id, tag_id)", tag_rows)
        cursor.execute("ANALYZE seed_model")
        log(f"models: {models:,} with their tags ({time.monotonic() - started:.0f} s)")

    def _copy(self, target: str, rows: io.StringIO) -> None:
        rows.seek(0)
        with self.cursor.cursor.copy(f"COPY {target} FROM STDIN") as copy:
            while chunk := rows.read(1 << 20):
                copy.write(chunk)

    # --- versions, formats, metrics -------------------------------------------------------

    def _versions(self, versions: int) -> None:
        """seed_version numbers every version (g, in model order); then the versions themselves.
        The latest version of every third model is a draft; the others are published."""
        cursor = self.cursor
        cursor.execute(
            "CREATE TEMP TABLE seed_version AS SELECT sm.vstart + n - 1 AS g, gen_random_uuid() AS id, "
            "sm.idx AS model_idx, sm.id AS model_id, n AS number, "
            "(n < sm.nver OR sm.idx % 3 <> 0) AS published, "
            "LEAST(now() - interval '1 hour', sm.created_at + make_interval(days => 2 * (n - 1))) AS created_at "
            "FROM seed_model sm CROSS JOIN generate_series(1, sm.nver) AS n")
        cursor.execute("ALTER TABLE seed_version ADD PRIMARY KEY (g)")
        cursor.execute("ANALYZE seed_version")
        frameworks = [f for f, _, _ in FRAMEWORKS]
        framework_versions = [v for _, v, _ in FRAMEWORKS]
        self._run("versions", f"""
            INSERT INTO registry_version (id, model_id, number, name, description, hyperparameters, config,
                framework, framework_version, metadata, signature, external_files, signature_source, status,
                published_by_id, published_at, created_by_id, created_at, updated_by_id, updated_at)
            SELECT sv.id, sv.model_id, sv.number,
                CASE WHEN sv.number %% 5 = 0 THEN 'retrain ' || to_char(sv.created_at, 'YYYY-MM') ELSE '' END,
                'Version ' || sv.number || ' of ' || sm.name || ': ' ||
                    (ARRAY['more data', 'new features', 'tuned learning rate', 'fixed label leak',
                           'longer training'])[1 + sv.g %% 5] || '.',
                jsonb_build_object('learning_rate', round((0.01 + (sv.g %% 30) / 100.0)::numeric, 2),
                                   'max_depth', 3 + sv.g %% 8, 'n_estimators', 100 * (1 + sv.g %% 10)),
                jsonb_build_object('features', 20 + sv.g %% 200, 'seed', sv.g %% 1000),
                (%s::text[])[1 + sv.model_idx %% {len(FRAMEWORKS)}],
                (%s::text[])[1 + sv.model_idx %% {len(FRAMEWORKS)}],
                '{{}}'::jsonb, '{{}}'::jsonb, '[]'::jsonb, '',
                CASE WHEN sv.published THEN 'published' ELSE 'draft' END,
                CASE WHEN sv.published THEN (%s::bigint[])[1 + sv.g %% 2] END,
                CASE WHEN sv.published THEN sv.created_at + interval '30 minutes' END,
                (%s::bigint[])[1 + sv.g %% 7], sv.created_at, (%s::bigint[])[1 + sv.g %% 7],
                sv.created_at + CASE WHEN sv.published THEN interval '30 minutes' ELSE interval '0' END
            FROM seed_version sv JOIN seed_model sm ON sm.idx = sv.model_idx
            WHERE sv.g >= %s AND sv.g < %s""",
            [frameworks, framework_versions, self._ids(PUBLISHERS), self._ids(WRITERS), self._ids(WRITERS)],
            versions)

    def _formats(self, formats: int, versions: int) -> None:
        """`formats` spread evenly (base per version, the first versions one more), kinds from
        the model's framework. Formats of published versions are ready; of a draft, the last
        one may still wait for its file (pending, no storage key). Ids derive from (version,
        kind), so audit events can name them without reading them back."""
        if not versions:
            return
        base, extra = divmod(formats, versions)
        kinds = [list(k) for _, _, k in FRAMEWORKS]
        self._run("formats", f"""
            INSERT INTO registry_format (id, version_id, kind, storage_key, original_filename, size, content_type,
                md5, sha256, declared_md5, declared_sha256, status, status_message, report, required,
                fail_on_tamper, uploaded_by_id, uploaded_at, verify_requested_at, processing_lease_until,
                processing_attempts, created_by_id, created_at)
            SELECT f.id, f.version_id, f.kind,
                CASE WHEN f.pending THEN '' ELSE 'formats/' || left(md5(f.id::text), 2) || '/' || md5(f.id::text) END,
                CASE WHEN f.pending THEN '' ELSE 'model.' || f.kind END,
                CASE WHEN f.pending THEN NULL ELSE 10000 + abs(hashtext(f.id::text)) %% 500000000 END,
                CASE WHEN f.pending THEN '' ELSE 'application/octet-stream' END,
                CASE WHEN f.pending THEN '' ELSE md5(f.id::text) END,
                CASE WHEN f.pending THEN '' ELSE encode(sha256(convert_to(f.id::text, 'UTF8')), 'hex') END,
                '', CASE WHEN f.pending THEN '' ELSE encode(sha256(convert_to(f.id::text, 'UTF8')), 'hex') END,
                CASE WHEN f.pending THEN 'pending' ELSE 'ready' END, '',
                CASE WHEN f.pending THEN '{{}}'::jsonb ELSE jsonb_build_object('kind', f.kind, 'verdict', 'clean') END,
                true, f.j = 0, CASE WHEN f.pending THEN NULL ELSE f.actor END,
                CASE WHEN f.pending THEN NULL ELSE f.created_at END, NULL, NULL, 0, f.actor, f.created_at
            FROM (
                SELECT md5(sv.id::text || ':' || k.kind)::uuid AS id, sv.id AS version_id, k.kind, k.j,
                       NOT sv.published AND k.j = k.n - 1 AND k.n > 1 AND sv.g %% 4 = 0 AS pending,
                       (%s::bigint[])[1 + (sv.g + k.j) %% 7] AS actor, sv.created_at + interval '5 minutes' AS created_at
                FROM seed_version sv
                CROSS JOIN LATERAL (
                    SELECT (%s::text[])[1 + (sv.model_idx %% {len(FRAMEWORKS)}) * 3 + j] AS kind, j,
                           %s + CASE WHEN sv.g < %s THEN 1 ELSE 0 END AS n
                    FROM generate_series(0, %s + CASE WHEN sv.g < %s THEN 1 ELSE 0 END - 1) AS j
                ) k
                WHERE sv.g >= %s AND sv.g < %s
            ) f""",
            [self._ids(WRITERS), [kind for family in kinds for kind in family], base, extra, base, extra],
            versions)

    def _metrics(self, metrics: int, versions: int) -> None:
        """Training curves: `metrics` points spread evenly over the versions, alternating loss
        (falling) and accuracy (rising) by step."""
        if not metrics:
            return
        base, extra = divmod(metrics, versions)
        self._run("metric points (by version)", """
            INSERT INTO registry_metric (version_id, key, value_number, value_text, step, wallclock, created_at)
            SELECT sv.id, (%s::text[])[1 + p %% 2],
                   CASE WHEN p %% 2 = 0 THEN round((1.0 / (2 + p / 2) + (sv.g %% 7) / 100.0)::numeric, 4)
                        ELSE round((0.6 + 0.35 * (1 - 1.0 / (2 + p / 2)) - (sv.g %% 5) / 100.0)::numeric, 4) END,
                   NULL, 1 + p / 2, sv.created_at + make_interval(mins => p), sv.created_at + make_interval(mins => p)
            FROM seed_version sv
            CROSS JOIN generate_series(0, %s + CASE WHEN sv.g < %s THEN 1 ELSE 0 END - 1) AS p
            WHERE sv.g >= %s AND sv.g < %s""",
            [METRIC_KEYS, base, extra], versions)

    def _lineage(self, versions: int) -> None:
        """Training records (one per 100 models) and links from every tenth version; a tag on
        every fifth version."""
        cursor = self.cursor
        cursor.execute("SELECT count(*) FROM seed_model")
        records = max(1, cursor.fetchone()[0] // 100)
        cursor.execute(
            "INSERT INTO registry_trainingrecord (id, context_id, name, uri, checksum, description, created_by_id, "
            "created_at) SELECT gen_random_uuid(), %s, 'dataset-' || lpad(r::text, 5, '0'), "
            "'s3://datasets/scale/' || r || '.parquet', md5(r::text), 'Snapshot ' || r, %s, now() - make_interval(days => r %% 900) "
            "FROM generate_series(0, %s - 1) AS r", [self.context_id, self.actors["ci-bot"], records])
        if not versions:
            return
        cursor.execute(
            "INSERT INTO registry_version_records (version_id, trainingrecord_id) "
            "SELECT sv.id, (SELECT array_agg(id ORDER BY name) FROM registry_trainingrecord WHERE context_id = %s)"
            "[1 + sv.g / 10 %% %s] FROM seed_version sv WHERE sv.g %% 10 = 0", [self.context_id, records])
        tags = dict(Tag.objects.filter(key__in=["baseline", "candidate"]).values_list("key", "id"))
        cursor.execute(
            "INSERT INTO registry_version_tags (version_id, tag_id) SELECT sv.id, "
            "CASE WHEN sv.g %% 2 = 0 THEN %s ELSE %s END FROM seed_version sv WHERE sv.g %% 5 = 0",
            [tags["baseline"], tags["candidate"]])
        log("training records, version links and version tags")

    def _aliases(self) -> None:
        """'production' on the newest published version of each model that has one (set at its
        previous one first, then moved), 'staging' on every fourth model's too."""
        cursor = self.cursor
        cursor.execute("""
            CREATE TEMP TABLE seed_alias AS
            SELECT DISTINCT ON (sv.model_idx) sv.model_idx, sv.model_id, sv.id AS version_id, sv.number, sv.created_at
            FROM seed_version sv WHERE sv.published ORDER BY sv.model_idx, sv.number DESC""")
        for name, where in (("production", "true"), ("staging", "a.model_idx %% 4 = 0")):
            cursor.execute(
                "INSERT INTO registry_alias (model_id, name, version_id, updated_by_id, updated_at) "
                f"SELECT a.model_id, %s, a.version_id, %s, a.created_at + interval '1 hour' FROM seed_alias a WHERE {where}",
                [name, self.actors["ada"]])
            cursor.execute(
                "INSERT INTO registry_aliasmove (model_id, alias_name, from_number, to_number, actor_id, created_at) "
                "SELECT a.model_id, %s, NULL, greatest(a.number - 1, 1), %s, a.created_at "
                f"FROM seed_alias a WHERE {where} UNION ALL "
                "SELECT a.model_id, %s, a.number - 1, a.number, %s, a.created_at + interval '1 hour' "
                f"FROM seed_alias a WHERE {where} AND a.number > 1",
                [name, self.actors["grace"], name, self.actors["ada"]])
        cursor.execute("UPDATE seed_model sm SET alias_id = a.id FROM registry_alias a "
                       "WHERE a.model_id = sm.id AND a.name = 'production'")
        cursor.execute("DROP TABLE seed_alias")
        log("aliases and their history")

    # --- audit ----------------------------------------------------------------------------

    def _events(self, events: int, models: int, versions: int) -> None:
        """The audit log: `events` in time order over the seeded span, by every actor (the bot
        most), on models, versions, formats and aliases that exist."""
        if not events:
            return
        actors = [name for name, _ in ACTORS if name != "ken"] + ["ci-bot"] * 3
        self._run("audit events", f"""
            INSERT INTO {AuditEvent._meta.db_table} (context_id, actor_id, actor_name, action, object_type,
                object_id, object_repr, summary, changes, created_at)
            SELECT %s, (%s::bigint[])[1 + e.actor], (%s::text[])[1 + e.actor], e.action, e.object_type, e.object_id,
                   e.object_repr, e.summary, e.changes, %s + make_interval(secs => e.i * %s)
            FROM (
                SELECT i, (i * 7) %% {len(actors)} AS actor,
                       CASE WHEN kind < 4 OR (kind = 19 AND sm.alias_id IS NULL) OR sv.id IS NULL THEN 'model.update'
                            WHEN kind < 7 THEN 'version.create' WHEN kind < 9 THEN 'version.update'
                            WHEN kind < 10 THEN 'version.publish' WHEN kind < 15 THEN 'format.upload'
                            WHEN kind < 19 THEN 'metric.log' ELSE 'alias.move' END AS action,
                       CASE WHEN kind < 4 OR (kind = 19 AND sm.alias_id IS NULL) OR sv.id IS NULL THEN 'model'
                            WHEN kind < 10 OR (kind >= 15 AND kind < 19) THEN 'version'
                            WHEN kind < 15 THEN 'format' ELSE 'alias' END AS object_type,
                       CASE WHEN kind < 4 OR (kind = 19 AND sm.alias_id IS NULL) OR sv.id IS NULL THEN sm.id::text
                            WHEN kind < 10 OR (kind >= 15 AND kind < 19) THEN sv.id::text
                            WHEN kind < 15 THEN md5(sv.id::text || ':' ||
                                (%s::text[])[1 + (sv.model_idx %% {len(FRAMEWORKS)}) * 3])::uuid::text
                            ELSE sm.alias_id::text END AS object_id,
                       CASE WHEN kind < 4 OR (kind = 19 AND sm.alias_id IS NULL) OR sv.id IS NULL THEN sm.name
                            WHEN kind < 15 OR kind < 19 THEN vm.name || ' v' || sv.number
                            ELSE sm.name || '@production' END AS object_repr,
                       CASE WHEN kind < 4 OR (kind = 19 AND sm.alias_id IS NULL) OR sv.id IS NULL
                                THEN 'changed description of ' || sm.name
                            WHEN kind < 7 THEN 'created version ' || sv.number || ' of ' || vm.name
                            WHEN kind < 9 THEN 'changed hyperparameters of version ' || sv.number
                            WHEN kind < 10 THEN 'published version ' || sv.number
                            WHEN kind < 15 THEN 'uploaded the file of version ' || sv.number
                            WHEN kind < 19 THEN 'logged 10 metric value(s) on version ' || sv.number || ': loss, accuracy'
                            ELSE 'moved alias production to version ' || sv.number END AS summary,
                       CASE WHEN kind < 4 OR (kind = 19 AND sm.alias_id IS NULL) OR sv.id IS NULL
                                THEN '{{"description": ["…", "…"]}}'::jsonb
                            ELSE '{{}}'::jsonb END AS changes
                FROM (SELECT i, i %% 20 AS kind FROM generate_series(%s::bigint, %s::bigint - 1) AS i) ev
                JOIN seed_model sm ON sm.idx = (ev.i * 7919) %% {models}
                LEFT JOIN seed_version sv ON {max(versions, 1)} > 0 AND sv.g = (ev.i * 104729) %% {max(versions, 1)}
                LEFT JOIN seed_model vm ON vm.idx = sv.model_idx
            ) e""",
            [self.context_id, self._ids(actors), actors, self.epoch, SPAN_DAYS * 86400 / max(events, 1),
             [kind for _, _, family in FRAMEWORKS for kind in family]], events)

    def _vacuum(self) -> None:
        """Statistics for the planner and a visibility map for index-only scans."""
        started = time.monotonic()
        for table in ("registry_model", "registry_model_tags", "registry_version", "registry_version_tags",
                      "registry_version_records", "registry_format", "registry_metric", "registry_alias",
                      "registry_aliasmove", "registry_trainingrecord", "registry_auditevent", "registry_tag"):
            self.cursor.execute(f"VACUUM (ANALYZE) {table}")
        log(f"VACUUM ANALYZE ({time.monotonic() - started:.0f} s)")
