"""Stores DataFrame asset outputs as Parquet files, one per asset partition."""

from pathlib import Path

import dagster as dg
import pandas as pd

from feature_platform.names import check_name, path_under


class ParquetIOManager(dg.ConfigurableIOManager):
    root: str

    def _path(self, context: dg.OutputContext | dg.InputContext) -> Path:
        # Partition keys come from whoever may add a dynamic partition (the web UI): checked
        # and resolved under `root`, so `../../x` can never write outside it.
        folder = path_under(self.root, *context.asset_key.path, what="asset key")
        if not context.has_asset_partitions:
            return folder / "_.parquet"
        partition = check_name(context.asset_partition_key, what="partition key")
        return path_under(folder, f"{partition}.parquet", what="partition key")

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        obj.to_parquet(tmp, index=False)
        tmp.replace(path)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path)), "rows": len(obj)})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        return pd.read_parquet(self._path(context))
