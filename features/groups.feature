@groups @destructive
Feature: Groups and length buckets
  Several groups, each serving one prompt-length bucket first: one group failing must leave
  the others serving.

  Scenario: One group fails and the other keeps serving
    Given a local P/D deployment with 1 prefill and 1 decode node in 2 groups
    And a load of 4 concurrent users
    When group 0 is down after 1500ms for 2s
    And the load runs for 5s
    Then the success rate over the whole run is at least 95%
    And every completed answer is complete
