@ratios
Feature: P:D ratios
  For each ratio, find the highest concurrency that still meets the targets, and which side
  saturates first: beyond it the service must rate-limit.

  Scenario Outline: Sizing <prefill>P/<decode>D
    Given a local P/D deployment with <prefill> prefill and <decode> decode nodes
    When the load steps through concurrency 2, 8, 24 for 2s each
    Then the sizing for TTFT p90 below 1000 ms, decode rate p50 of at least 20 tokens/s and a success rate of 99% is reported

    Examples:
      | prefill | decode |
      | 1       | 1      |
      | 1       | 3      |
      | 2       | 4      |
