import pytest

from rs_retrieval.evaluation.folds import aggregate_folds, format_table


def _fold(r1, mr, medr):
    return {
        "i2t_R@1": r1,
        "i2t_R@5": 20.0,
        "i2t_R@10": 30.0,
        "t2i_R@1": 5.0,
        "t2i_R@5": 15.0,
        "t2i_R@10": 25.0,
        "mR": mr,
        "rsum": 6 * mr,
        "i2t_medr": medr,
        "i2t_queries": 452,
        "t2i_queries": 2260,
        "protocol": "amfmn",
        "tie_policy": "optimistic",
    }


def test_aggregate_folds_mean_and_sample_std():
    folds = [_fold(10.0, 17.0, 12.0), _fold(12.0, 18.0, 14.0), _fold(14.0, 19.0, 13.0)]
    result = aggregate_folds(folds)
    assert result["n_folds"] == 3 and result["protocol"] == "amfmn" and result["tie_policy"] == "optimistic"
    assert result["mean"]["i2t_R@1"] == pytest.approx(12.0) and result["std"]["i2t_R@1"] == pytest.approx(2.0)
    assert result["mean"]["mR"] == pytest.approx(18.0) and result["std"]["mR"] == pytest.approx(1.0)
    assert result["mean"]["rsum"] == pytest.approx(108.0) and result["std"]["rsum"] == pytest.approx(6.0)
    assert result["mean"]["i2t_medr"] == pytest.approx(13.0) and result["std"]["i2t_medr"] == pytest.approx(1.0)
    assert result["mean"]["i2t_R@5"] == 20.0 and result["std"]["i2t_R@5"] == 0.0
    assert "protocol" not in result["mean"]
    single = aggregate_folds([_fold(10.0, 17.0, 12.0)])
    assert single["std"]["mR"] == 0.0 and single["mean"]["mR"] == 17.0


def test_aggregate_folds_per_reranker():
    folds = [
        {"none": _fold(10.0, 17.0, 12.0), "galr_mr": _fold(11.0, 18.0, 12.0)},
        {"none": _fold(12.0, 19.0, 12.0), "galr_mr": _fold(13.0, 20.0, 12.0)},
    ]
    result = aggregate_folds(folds)
    assert set(result) == {"none", "galr_mr"}
    assert result["none"]["mean"]["mR"] == pytest.approx(18.0) and result["galr_mr"]["mean"]["mR"] == pytest.approx(
        19.0
    )
    assert result["galr_mr"]["std"]["i2t_R@1"] == pytest.approx(2**0.5)


def test_aggregate_folds_rejects_inconsistent_folds():
    with pytest.raises(ValueError, match="at least one fold"):
        aggregate_folds([])
    other = _fold(10.0, 17.0, 12.0) | {"protocol": "dedup_text"}
    with pytest.raises(ValueError, match="disagree on 'protocol'"):
        aggregate_folds([_fold(10.0, 17.0, 12.0), other])
    partial = {key: value for key, value in _fold(10.0, 17.0, 12.0).items() if key != "mR"}
    with pytest.raises(ValueError, match="fold 1 has keys"):
        aggregate_folds([_fold(10.0, 17.0, 12.0), partial])


def test_format_table_single_result():
    table = format_table(_fold(10.634, 17.0, 12.0), title="RSITMD test")
    lines = table.splitlines()
    assert lines[0] == "RSITMD test"
    assert [cell.strip() for cell in lines[1].strip("|").split("|")] == [
        "i2t R@1",
        "i2t R@5",
        "i2t R@10",
        "t2i R@1",
        "t2i R@5",
        "t2i R@10",
        "mR",
    ]
    assert [cell.strip() for cell in lines[3].strip("|").split("|")] == [
        "10.63",
        "20.00",
        "30.00",
        "5.00",
        "15.00",
        "25.00",
        "17.00",
    ]
    assert lines[-1] == "protocol: amfmn, tie_policy: optimistic, queries: 452 images, 2260 texts"
    assert len({len(line) for line in lines[1:4]}) == 1  # aligned columns


def test_format_table_rows_per_reranker_and_fold_aggregates():
    results = {"none": _fold(10.0, 17.0, 12.0), "galr_mr": _fold(11.0, 18.5, 12.0)}
    lines = format_table(results).splitlines()
    assert lines[0].startswith("| rerank ") and lines[2].startswith("| none ") and lines[3].startswith("| galr_mr ")
    assert lines[3].rstrip(" |").endswith("18.50")
    aggregate = aggregate_folds([results, {"none": _fold(12.0, 19.0, 12.0), "galr_mr": _fold(13.0, 20.5, 12.0)}])
    table = format_table(aggregate)
    assert "11.00 ± 1.41" in table and "18.00 ± 1.41" in table and "mean ± std over 2 folds" in table
    with pytest.raises(TypeError, match="format_table expects"):
        format_table({"none": 3.0})
