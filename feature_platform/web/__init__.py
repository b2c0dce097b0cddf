"""The people's app: sign-in, the annotator's one-task page, the reviewer's conflicts and the
lead's dashboard, server-rendered with Starlette + Jinja2. It calls the core only (queue,
label store, registry, MLflow tracking); it never imports Dagster."""
